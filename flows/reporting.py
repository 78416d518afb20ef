"""Artifacts and progress are reports about the work, never part of it.

A Prefect API that hiccups while a backup streams must not fail the backup: each report is tried
once, and a failure is logged as a warning (once per kind) and otherwise ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")


class BestEffort:
    """Runs reports for one flow run, remembering which kinds already failed so it warns once each."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> None:
        self._log = logger
        self._failed: set[str] = set()

    def __call__(self, what: str, report: Callable[[], Result]) -> Result | None:
        try:
            return report()
        except Exception as error:  # a report must never end the work it reports on
            if what not in self._failed:
                self._failed.add(what)
                self._log.warning("could not publish the %s (the work goes on): %s", what, error)
            return None
