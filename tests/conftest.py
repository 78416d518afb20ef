"""Shared test settings: no telemetry, no network, and the rule for missing system tools."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

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
