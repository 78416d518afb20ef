"""The review on every supported major: catalogue columns chosen by ``server_version_num``, a stated
warning where an older server lacks a statistic, and a hint that fits the error."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from models.index_review import IndexReviewReport, SlowQueryStatistics
from models.settings import load_settings
from tasks.index_review.catalog import indexes_query, tables_query
from tasks.index_review.index_findings import redundant_findings
from tasks.index_review.render import report_markdown, report_text
from tasks.index_review.server_versions import statistics_error_hint, unjudged
from tasks.index_review.table_findings import sequential_scan_findings
from tests.unit.index_review.test_index_redundancy import index
from tests.unit.index_review.test_index_review_rules import table

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
PG15, PG16, PG17, PG18 = 150014, 160010, 170006, 180006


def test_postgresql_15_reads_no_last_scan_columns() -> None:
    indexes, tables = str(indexes_query(PG15)), str(tables_query(PG15))

    assert "last_idx_scan" not in indexes
    assert "NULL::timestamptz AS last_scan" in indexes
    assert "last_seq_scan" not in tables
    assert "NULL::timestamptz AS last_sequential_scan" in tables


@pytest.mark.parametrize("version_num", [160000, PG16, PG17, PG18])
def test_postgresql_16_and_later_read_when_each_relation_was_last_scanned(version_num: int) -> None:
    assert "s.last_idx_scan AS last_scan" in str(indexes_query(version_num))
    assert "s.last_seq_scan AS last_sequential_scan" in str(tables_query(version_num))


def test_an_older_server_is_a_stated_warning_not_an_error() -> None:
    (warning,) = unjudged(PG15)

    assert warning.startswith("index usage age is unknown before PostgreSQL 16: PostgreSQL 15 does not")
    assert "redundant and seq-scans findings" in warning
    assert unjudged(PG16) == unjudged(PG18) == []


def test_only_a_missing_privilege_calls_for_pg_monitor() -> None:
    assert statistics_error_hint("42501", PG15).endswith("GRANT pg_monitor TO that role")

    for sqlstate, version_num in [("42703", PG15), ("42P01", PG18), ("0A000", None), ("08006", PG16)]:
        assert "pg_monitor" not in statistics_error_hint(sqlstate, version_num)


def test_a_query_that_does_not_fit_a_supported_server_is_reported_as_ours() -> None:
    hint = statistics_error_hint("42703", PG15)  # undefined_column

    assert hint.startswith("the review's catalogue query does not fit PostgreSQL 15")
    assert "dbops supports PostgreSQL 15 to 18" in hint
    assert "report it to the dbops maintainers" in hint


def test_a_server_older_than_15_is_told_to_upgrade() -> None:
    hint = statistics_error_hint("42704", 140013)  # stats_fetch_consistency is new in 15

    assert hint == "dbops supports PostgreSQL 15 to 18, and this server is PostgreSQL 14: upgrade it"


def test_a_failed_session_is_retried_not_granted() -> None:
    assert statistics_error_hint("57014", PG17).startswith("retry the review")  # query_canceled
    assert statistics_error_hint(None, None).startswith("retry the review")


def test_evidence_says_how_long_ago_the_last_scan_was_where_the_server_records_it() -> None:
    settings = load_settings(_env_file=None)
    covered = index("ix_courses_university_id", "university_id", scans=4, last_scan=NOW - timedelta(days=2))
    covering = index("uq_courses_university_id_code", "university_id", "code", is_unique=True)
    heavy = table(sequential_scans=60, index_scans=40, last_sequential_scan=NOW - timedelta(hours=6))

    (redundant,) = redundant_findings([(covered, covering)], NOW, settings)
    (on_15,) = redundant_findings([(replace(covered, last_scan=None), covering)], NOW, settings)
    (scanned,) = sequential_scan_findings([heavy], NOW, settings)

    assert redundant.evidence["last_scan_age_days"] == pytest.approx(2.0)
    assert on_15.evidence["last_scan_age_days"] is None
    assert scanned.evidence["last_sequential_scan_age_days"] == pytest.approx(0.25)


def test_the_warning_is_printed_and_published_with_the_report() -> None:
    report = IndexReviewReport(
        database="platform on db:5432",
        server_version="15.14",
        reviewed_at=NOW,
        elapsed_seconds=0.2,
        statistics_since=None,
        statistics_age_days=None,
        slow_queries=SlowQueryStatistics(available=False, detail="pg_stat_statements is not loaded"),
        warnings=unjudged(PG15),
        findings=[],
    )

    assert f"warning: {unjudged(PG15)[0]}" in report_text(report)
    assert f"**Warning:** {unjudged(PG15)[0]}" in report_markdown(report)
    assert "warning" not in " ".join(report_text(report.model_copy(update={"warnings": []})))
