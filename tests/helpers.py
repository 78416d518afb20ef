"""Small helpers every kind of test shares: environments for child processes and synthetic plans."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from tasks.seed.synth_rows import SynthPlan

# A fixed end of the synthetic time window, so generated data is the same on every day the suite runs.
SYNTH_UNTIL = datetime(2026, 11, 1, tzinfo=UTC)
EMPTY_PLAN = SynthPlan(users=0, applications=0, audit_logs=0, events=0, days=30, seed=1, until=SYNTH_UNTIL)


def synth_plan(**changes: object) -> SynthPlan:
    """A synthetic plan that loads nothing but what *changes* asks for (days 30, seed 1 by default)."""
    return replace(EMPTY_PLAN, **changes)  # type: ignore[arg-type]


def environment_without_dbops(**extra: str) -> dict[str, str]:
    """This process's environment without any ``DBOPS_*`` setting, plus *extra*: what a child
    ``dbops`` sees when only the test decides its configuration."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DBOPS_")}
    environment.update(extra)
    return environment


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll *condition* until it holds; fail with *what* after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
