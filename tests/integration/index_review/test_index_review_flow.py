"""The ``index-review`` flow on a real Prefect API: findings never fail it, unreadable statistics do."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import URL

from flows.index_review import index_review_flow
from models.index_review import IndexReviewReport
from tests.integration.conftest import connect, flow_run_artifacts, flow_url

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_findings_complete_the_run_and_are_published_as_artifacts(
    seeded_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = index_review_flow(database_url=flow_url(seeded_url, monkeypatch), return_state=True)

    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, IndexReviewReport)
    artifacts = flow_run_artifacts(state.state_details.flow_run_id)
    assert set(artifacts) == {"index-review-findings", "index-review"}
    rows = json.loads(str(artifacts["index-review-findings"]))
    assert [row["id"] for row in rows] == [finding.id for finding in report.findings]
    redundant = next(row for row in rows if row["id"] == "redundant:ix_courses_university_id")
    assert redundant["evidence"].startswith("columns=university_id covered_by=uq_courses_university_id_code")
    markdown = str(artifacts["index-review"])
    assert "## redundant:ix_courses_university_id" in markdown
    assert "DROP INDEX CONCURRENTLY IF EXISTS public.ix_courses_university_id;" in markdown
    assert (
        "CREATE INDEX CONCURRENTLY ix_courses_university_id ON public.courses USING btree (university_id);"
        in (markdown)
    )
    assert "**Slow queries:** pg_stat_statements is not loaded" in markdown
    assert str(seeded_url.password) not in markdown


def test_unreadable_statistics_fail_the_run(
    migrated_url: URL, login_role_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect(migrated_url) as connection:
        connection.execute("REVOKE SELECT ON pg_catalog.pg_stat_all_tables FROM PUBLIC")
    unreadable_url = login_role_url

    state = index_review_flow(database_url=flow_url(unreadable_url, monkeypatch), return_state=True)

    assert state.is_failed()
    assert "could not read the index statistics" in str(state.message)
    assert "permission denied for view pg_stat_all_tables" in str(state.message)
    assert str(unreadable_url.password) not in str(state.message)
