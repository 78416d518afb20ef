"""Each index review finding, produced by a fixture that creates exactly that situation on a real server."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import URL

from models.index_review import Finding, FindingKind, IndexReviewReport
from models.settings import Settings
from tasks.index_review.runner import review_indexes
from tests.integration.conftest import connect

SEEDED_PLAIN_INDEXES = {
    "ix_analytics_events_occurred_at",
    "ix_audit_logs_created_at",
    "ix_courses_code",
    "ix_courses_name",
    "ix_universities_city",
    "ix_universities_is_verified",
    "ix_users_role",
    "ix_users_status",
}


def review(url: URL, settings: Settings, **overrides: Any) -> IndexReviewReport:
    return review_indexes(url, settings.model_copy(update=overrides))


def flush_statistics(connection: psycopg.Connection[Any]) -> None:
    """Make this session's counters visible to others now (a backend otherwise flushes them at most
    once a second, or when it exits)."""
    connection.execute("SELECT pg_stat_force_next_flush()")
    connection.execute("SELECT 1")


def by_id(report: IndexReviewReport) -> dict[str, Finding]:
    return {finding.id: finding for finding in report.findings}


def test_the_seeded_schema_yields_exactly_the_expected_findings(seeded_url: URL, settings: Settings) -> None:
    report = review(seeded_url, settings)

    firm = {finding.id for finding in report.findings if not finding.tentative}
    assert firm == {"redundant:ix_courses_university_id", "fk-without-index:fk_audit_logs_actor_id_users"}
    tentative = [finding for finding in report.findings if finding.tentative]
    assert {finding.kind for finding in tentative} <= {FindingKind.UNUSED}
    assert {finding.index for finding in tentative} <= SEEDED_PLAIN_INDEXES
    assert all(finding.evidence["scans"] == 0 for finding in tentative)
    redundant = by_id(report)["redundant:ix_courses_university_id"]
    assert redundant.evidence["covered_by"] == "uq_courses_university_id_code"
    assert redundant.evidence["covered_by_columns"] == ["university_id", "code"]
    foreign_key = by_id(report)["fk-without-index:fk_audit_logs_actor_id_users"]
    assert foreign_key.evidence["rows"] == 1_000
    assert foreign_key.sql[-1] == (
        "CREATE INDEX CONCURRENTLY ix_audit_logs_actor_id ON public.audit_logs (actor_id)"
    )
    assert not report.slow_queries.available


def test_duplicate_and_prefix_indexes_are_found_against_the_index_that_stays(
    migrated_url: URL, settings: Settings
) -> None:
    with connect(migrated_url) as connection:
        connection.execute("CREATE INDEX ix_zz_courses_code_copy ON courses (code)")
        connection.execute("CREATE INDEX ix_courses_name_code ON courses (name, code)")
        connection.execute("CREATE UNIQUE INDEX ix_aa_courses_code_unique ON courses (code, id)")
        connection.execute("CREATE INDEX ix_courses_code_pattern ON courses (code text_pattern_ops)")

    findings = by_id(review(migrated_url, settings))

    copy = findings["redundant:ix_zz_courses_code_copy"]
    assert copy.evidence["covered_by"] == "ix_aa_courses_code_unique"
    assert findings["redundant:ix_courses_code"].evidence["covered_by"] == "ix_aa_courses_code_unique"
    assert findings["redundant:ix_courses_name"].evidence["covered_by"] == "ix_courses_name_code"
    assert "redundant:ix_aa_courses_code_unique" not in findings
    assert "redundant:ix_courses_code_pattern" not in findings
    # Dropping is recommended once: the undeclared copy points at the redundancy finding.
    undeclared = findings["undeclared-index:ix_zz_courses_code_copy"]
    assert not undeclared.sql
    assert "redundant:ix_zz_courses_code_copy" in undeclared.recommendation


def test_identical_plain_indexes_report_the_name_that_sorts_later(
    migrated_url: URL, settings: Settings
) -> None:
    with connect(migrated_url) as connection:
        connection.execute("CREATE INDEX ix_users_last_name_a ON users (last_name)")
        connection.execute("CREATE INDEX ix_users_last_name_b ON users (last_name)")

    findings = by_id(review(migrated_url, settings))

    assert findings["redundant:ix_users_last_name_b"].evidence["covered_by"] == "ix_users_last_name_a"
    assert "redundant:ix_users_last_name_a" not in findings


def test_a_foreign_key_without_an_index_is_found_and_a_leading_index_satisfies_it(
    migrated_url: URL, settings: Settings
) -> None:
    with connect(migrated_url) as connection:
        connection.execute("CREATE TABLE enrolments (id int PRIMARY KEY, course_id uuid, note text)")
        connection.execute(
            "ALTER TABLE enrolments ADD CONSTRAINT fk_enrolments_course FOREIGN KEY (course_id) "
            "REFERENCES courses (id)"
        )
    finding = by_id(review(migrated_url, settings))["fk-without-index:fk_enrolments_course"]
    assert finding.evidence["columns"] == ["course_id"]
    assert finding.evidence["referenced_table"] == "courses"
    assert finding.index == "ix_enrolments_course_id"

    with connect(migrated_url) as connection:
        connection.execute("CREATE INDEX ix_partial ON enrolments (course_id) WHERE note IS NULL")
    assert "fk-without-index:fk_enrolments_course" in by_id(review(migrated_url, settings))

    with connect(migrated_url) as connection:
        connection.execute("CREATE INDEX ix_enrolments_course_note ON enrolments (course_id, note)")
    assert "fk-without-index:fk_enrolments_course" not in by_id(review(migrated_url, settings))


def test_an_invalid_index_from_a_failed_concurrent_build_is_found(
    migrated_url: URL, settings: Settings
) -> None:
    with connect(migrated_url) as connection:
        connection.execute("CREATE TABLE codes (id int PRIMARY KEY, code text)")
        connection.execute("INSERT INTO codes VALUES (1, 'x'), (2, 'x')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            connection.execute("CREATE UNIQUE INDEX CONCURRENTLY ix_codes_code ON codes (code)")

    findings = by_id(review(migrated_url, settings))

    invalid = findings["invalid:ix_codes_code"]
    assert invalid.evidence["valid"] is False
    assert invalid.evidence["declared_by_models"] is False
    assert invalid.sql[-1] == "DROP INDEX CONCURRENTLY IF EXISTS public.ix_codes_code"
    assert invalid.undo_sql[-1].startswith("CREATE UNIQUE INDEX CONCURRENTLY ix_codes_code ON public.codes")
    assert "unused:ix_codes_code" not in findings


def test_a_concurrent_build_still_running_is_not_called_invalid(
    migrated_url: URL, settings: Settings
) -> None:
    with connect(migrated_url) as writer, connect(migrated_url) as builder:
        writer.execute("BEGIN")
        writer.execute("INSERT INTO audit_logs (action, entity_type) VALUES ('login', 'user')")
        build = threading.Thread(
            target=builder.execute,
            args=("CREATE INDEX CONCURRENTLY ix_audit_logs_action ON audit_logs (action)",),
        )
        build.start()
        try:
            with connect(migrated_url) as observer:
                deadline = time.monotonic() + 10
                while not observer.execute("SELECT 1 FROM pg_stat_progress_create_index").fetchone():
                    assert time.monotonic() < deadline, "the build never started"
                    time.sleep(0.05)
            during = by_id(review(migrated_url, settings))
        finally:
            writer.execute("ROLLBACK")
            build.join(timeout=30)

    assert "invalid:ix_audit_logs_action" not in during
    assert "ix_audit_logs_action" in {
        finding.index for finding in during.values()
    }  # it is seen, as undeclared


def test_an_index_never_scanned_while_a_workload_scans_another_is_unused(
    migrated_url: URL, settings: Settings
) -> None:
    with connect(migrated_url) as connection:
        connection.execute("CREATE TABLE readings (id int PRIMARY KEY, sensor int, value int)")
        connection.execute("INSERT INTO readings SELECT g, g % 50, g FROM generate_series(1, 5000) AS g")
        connection.execute("CREATE INDEX ix_readings_sensor ON readings (sensor)")
        connection.execute("CREATE INDEX ix_readings_value ON readings (value)")
        connection.execute("ANALYZE readings")
        for sensor in range(5):
            connection.execute("SELECT count(*) FROM readings WHERE sensor = %s", (sensor,))
        flush_statistics(connection)

    report = review(migrated_url, settings)
    findings = by_id(report)

    unused = findings["unused:ix_readings_value"]
    assert unused.evidence["scans"] == 0
    assert unused.tentative  # the test server's statistics are minutes old
    assert "unused:ix_readings_sensor" not in findings
    assert "unused:readings_pkey" not in findings
    assert unused.evidence["statistics_age_days"] == report.statistics_age_days
    settled = by_id(review(migrated_url, settings, review_unused_min_age_days=0))
    assert not settled["unused:ix_readings_value"].tentative


def test_a_bloated_index_after_mass_updates_is_found_and_a_fresh_one_is_not(
    migrated_url: URL, settings: Settings
) -> None:
    with connect(migrated_url) as connection:
        connection.execute(
            "CREATE TABLE counters (id int PRIMARY KEY, hits int) WITH (autovacuum_enabled = off)"
        )
        connection.execute("INSERT INTO counters SELECT g, g FROM generate_series(1, 100000) AS g")
        connection.execute("CREATE INDEX ix_counters_hits ON counters (hits)")
        for _ in range(3):
            connection.execute("UPDATE counters SET hits = hits + 100000")
        connection.execute("VACUUM ANALYZE counters")
        connection.execute("CREATE INDEX ix_counters_hits_fresh ON counters (hits, id)")
        connection.execute("ANALYZE counters")

    findings = by_id(review(migrated_url, settings, review_bloat_min_mb=1.0))

    bloat = findings["index-bloat:ix_counters_hits"]
    assert bloat.evidence["bloat_percent"] >= 60
    assert bloat.evidence["rows"] == 100_000
    assert bloat.sql[-1] == "REINDEX INDEX CONCURRENTLY public.ix_counters_hits"
    assert "index-bloat:ix_counters_hits_fresh" not in findings
    assert findings["table-bloat:counters"].evidence["bloat_percent"] >= 60
    assert not findings["table-bloat:counters"].online


def test_a_large_table_read_by_sequential_scans_is_found(migrated_url: URL, settings: Settings) -> None:
    with connect(migrated_url) as connection:
        for name in ("scanned", "looked_up"):
            connection.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, kind int)")
            connection.execute(f"INSERT INTO {name} SELECT g, g % 7 FROM generate_series(1, 20000) AS g")
            flush_statistics(connection)  # before ANALYZE, or the insert is counted on top of its estimate
            connection.execute(f"ANALYZE {name}")
        for kind in range(10):
            connection.execute("SELECT count(*) FROM scanned WHERE kind = %s", (kind,))
        for key in range(1, 101):  # the primary key's build counts one sequential scan: 99% by index
            connection.execute("SELECT kind FROM looked_up WHERE id = %s", (key,))
        connection.execute("SELECT kind FROM scanned WHERE id = 1")
        flush_statistics(connection)

    findings = by_id(review(migrated_url, settings))

    scans = findings["seq-scans:scanned"]
    assert scans.evidence["sequential_scans"] >= 10
    assert scans.evidence["index_scans"] == 1
    assert scans.evidence["index_use_percent"] < 10
    assert scans.evidence["rows"] == 20_000
    assert "seq-scans:looked_up" not in findings


def test_dead_rows_call_for_vacuum_and_unanalysed_rows_for_analyze(
    migrated_url: URL, settings: Settings
) -> None:
    with connect(migrated_url) as connection:
        for name in ("churned", "fresh"):
            connection.execute(f"CREATE TABLE {name} (id int PRIMARY KEY) WITH (autovacuum_enabled = off)")
        connection.execute("INSERT INTO churned SELECT generate_series(1, 10000)")
        flush_statistics(connection)
        connection.execute("ANALYZE churned")
        connection.execute("DELETE FROM churned WHERE id % 2 = 0")
        connection.execute("INSERT INTO fresh SELECT generate_series(1, 5000)")
        flush_statistics(connection)

    findings = by_id(review(migrated_url, settings))

    vacuum = findings["vacuum:churned"]
    assert vacuum.evidence["dead_rows"] == 5_000
    assert vacuum.evidence["dead_percent"] == 100.0
    assert "analyze:churned" not in findings
    analyze = findings["analyze:fresh"]
    assert analyze.evidence["rows_changed_since_analyze"] == 5_000
    assert analyze.evidence["last_analyze"] is None
    assert analyze.sql[-1] == "ANALYZE public.fresh"


def test_indexes_the_models_declare_and_the_database_lacks_and_the_reverse(
    migrated_url: URL, settings: Settings
) -> None:
    with connect(migrated_url) as connection:
        connection.execute("DROP INDEX ix_users_role")
        connection.execute("ALTER TABLE universities DROP CONSTRAINT uq_universities_slug")
        connection.execute("CREATE INDEX ix_users_last_login_at ON users (last_login_at)")
        connection.execute("CREATE INDEX ix_audit_logs_actor_id ON audit_logs (actor_id)")

    findings = by_id(review(migrated_url, settings))

    assert (
        findings["missing-index:ix_users_role"].sql[-1]
        == "CREATE INDEX CONCURRENTLY ix_users_role ON users (role)"
    )
    assert findings["missing-index:uq_universities_slug"].sql[1:] == [
        "CREATE UNIQUE INDEX CONCURRENTLY uq_universities_slug ON public.universities (slug)",
        "ALTER TABLE public.universities ADD CONSTRAINT uq_universities_slug UNIQUE "
        "USING INDEX uq_universities_slug",
    ]
    undeclared = findings["undeclared-index:ix_audit_logs_actor_id"]
    assert undeclared.evidence["serves_foreign_keys"] == ["fk_audit_logs_actor_id_users"]
    assert not undeclared.sql  # serves a foreign key: declare it, do not drop it
    assert "fk-without-index:fk_audit_logs_actor_id_users" not in findings
    assert "undeclared-index:alembic_version_pkc" not in findings
    # Never scanned, so unused speaks for dropping it and the undeclared finding points there.
    assert (
        "unused:ix_users_last_login_at" in findings["undeclared-index:ix_users_last_login_at"].recommendation
    )
