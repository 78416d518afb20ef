"""Shared test settings: no telemetry, no network, no Hypothesis deadline, the rule for missing tools."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest
from hypothesis import settings

# Properties are checked here, not timings: on a shared, busy machine one example can take longer than
# Hypothesis' default 200 ms deadline and fail a correct test.
settings.register_profile("dbops", deadline=None)
settings.load_profile("dbops")

# Before anything imports prefect: nothing may phone home from a test run.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def require_tool(name: str, reason: str) -> str:
    """The path of system tool *name* on PATH; see :func:`missing_tool` for what happens without it."""
    path = shutil.which(name)
    if path is None:
        missing_tool(f"{name} is not installed ({reason})")
    return path


def missing_tool(message: str) -> NoReturn:
    """Skip on a developer machine; under CI, where .ci/run installs every tool, fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; .ci/run must install it")
    pytest.skip(message)
