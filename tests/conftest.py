"""Shared test settings: no telemetry, no network, and the rule for missing system tools."""

from __future__ import annotations

import os
import shutil

import pytest

# Before anything imports prefect: nothing may phone home from a test run.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def require_tool(name: str, reason: str) -> str:
    """The path of system tool *name*; skips the test without it, except under CI where it fails."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed ({reason})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; .ci/run must install it")
    pytest.skip(message)
