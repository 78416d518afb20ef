"""The pure parts of ``dbops serve``'s supervision and of ``--check``: the back-off, how often an
outage is logged, the one line for what ended a runner, and the report's lines."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import islice

from jinja2.sandbox import ImmutableSandboxedEnvironment

from deployments.alerts import _DEPLOYMENT_CHANGE_SUBJECT
from deployments.serve_check import DeploymentState, needs_attention, report
from deployments.serving import LONGEST_WAIT_SECONDS, backoff_delays, first_cause, worth_logging


def test_the_backoff_doubles_up_to_its_longest_wait_and_stays_there() -> None:
    assert list(islice(backoff_delays(), 8)) == [1, 2, 4, 8, 16, 30, 30, 30]
    assert LONGEST_WAIT_SECONDS == 30


def test_an_outage_is_logged_once_per_step_then_every_ten_minutes() -> None:
    logged = []
    previous = None
    for attempt, delay in enumerate(islice(backoff_delays(), 60), start=1):
        if worth_logging(attempt, delay, previous):
            logged.append(attempt)
        previous = delay

    # steps 1, 2, 4, 8, 16 and the first 30 s wait; then one line in every twenty 30 s waits
    assert logged == [1, 2, 3, 4, 5, 6, 20, 40, 60]


def test_what_ended_a_runner_is_the_first_leaf_of_its_exception_groups() -> None:
    threshold = RuntimeError("Service exceeded error threshold.")
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [threshold])])

    assert first_cause(nested) == "RuntimeError: Service exceeded error threshold."
    assert first_cause(ValueError("first line\nsecond")) == "ValueError: first line"
    assert first_cause(TimeoutError()) == "TimeoutError"


def test_the_report_says_paused_unserved_missing_and_the_last_run() -> None:
    started = datetime(2026, 12, 3, 2, 0, 4, tzinfo=UTC)
    states = [
        DeploymentState("nightly-backup/nightly-backup", True, False, True, started, "Completed"),
        DeploymentState("weekly-maintenance/weekly-maintenance", True, True, True),
        DeploymentState("restore/restore", True, False, False),
        DeploymentState("restore-rollback/restore-rollback", False),
    ]

    lines = report(states)

    assert lines[0].split() == [
        "nightly-backup/nightly-backup", "active", "served", "last", "ran", "2026-12-03", "02:00:04", "UTC",
        "(Completed)",
    ]  # fmt: skip
    assert "PAUSED" in lines[1]
    assert "never ran" in lines[1]
    assert "NOT SERVED" in lines[2]
    assert "not registered" in lines[3]
    assert [needs_attention(state) for state in states] == [False, True, True, True]
    assert len({len(line) - len(line.split(maxsplit=1)[1]) for line in lines}) == 1  # one column


def render(payload: Mapping[str, object]) -> str:
    template = ImmutableSandboxedEnvironment().from_string(_DEPLOYMENT_CHANGE_SUBJECT)
    resource = {"prefect.resource.name": "nightly-backup"}
    return template.render(event={"resource": resource, "payload": payload})


def test_the_change_alert_tells_a_pause_from_a_resume_and_from_other_changes() -> None:
    paused = {"updated_fields": ["paused"], "updates": {"paused": {"from": False, "to": True}}}
    resumed = {"updated_fields": ["paused"], "updates": {"paused": {"from": True, "to": False}}}
    edited = {"updated_fields": ["description", "version"], "updates": {"description": {}, "version": {}}}

    assert render(paused) == "dbops: deployment nightly-backup is PAUSED: its schedule creates no runs"
    assert render(resumed) == "dbops: deployment nightly-backup was resumed"
    assert render(edited) == "dbops: deployment nightly-backup was changed (description, version)"
