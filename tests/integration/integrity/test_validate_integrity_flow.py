"""The ``validate-integrity`` flow on a real Prefect API: Completed, Failed, artifacts."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import URL

from flows.validate_integrity import validate_integrity_flow
from models.integrity import IntegrityReport
from tests.integration.conftest import connect, flow_run_artifacts, flow_url

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_clean_database_completes_with_a_row_per_check(
    seeded_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = validate_integrity_flow(database_url=flow_url(seeded_url, monkeypatch), return_state=True)

    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, IntegrityReport)
    assert report.row_counts["applications"] == 300
    artifacts = flow_run_artifacts(state.state_details.flow_run_id)
    assert set(artifacts) == {"integrity-checks", "integrity-summary"}
    rows = json.loads(str(artifacts["integrity-checks"]))
    assert [(row["check"], row["status"]) for row in rows] == [
        (check.name, "passed") for check in report.checks
    ]


def test_a_failed_check_fails_the_run_with_samples_in_the_summary(
    seeded_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect(seeded_url) as connection:
        connection.execute("ALTER TABLE users ALTER COLUMN status SET DEFAULT 'ACTIVE'")

    state = validate_integrity_flow(database_url=flow_url(seeded_url, monkeypatch), return_state=True)

    assert state.is_failed()
    assert "1 integrity check(s) failed" in str(state.message)
    assert "users.status defaults to 'ACTIVE'::user_status" in str(state.message)
    summary = str(flow_run_artifacts(state.state_details.flow_run_id)["integrity-summary"])
    assert "## enums: sample rows" in summary
    assert '"column": "users.status"' in summary
