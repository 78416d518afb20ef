"""``dbops review-indexes --apply``: one finding at a time, outside a transaction, re-checked after."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.engine import URL

from models.errors import FindingNotApplicableError, IndexApplyError, MigrationLockTimeoutError
from models.index_review import IndexReviewReport
from models.settings import Settings
from tasks.index_review.apply import apply_finding
from tasks.index_review.runner import review_indexes
from tasks.postgres.engine import make_engine
from tasks.schema.lock import migration_lock
from tests.integration.conftest import connect, run_cli, url_string
from tests.integration.index_review.test_index_review import by_id, flush_statistics


def index_exists(url: URL, name: str) -> bool:
    with connect(url) as connection:
        row = connection.execute(
            "SELECT x.indisvalid FROM pg_class AS i JOIN pg_index AS x ON x.indexrelid = i.oid "
            "WHERE i.relname = %s",
            (name,),
        ).fetchone()
    return row is not None and bool(row[0])


def test_applying_a_redundant_index_drop_and_its_undo(migrated_url: URL, cli_env: dict[str, str]) -> None:
    applied = run_cli("review-indexes", "--apply", "redundant:ix_courses_university_id", env=cli_env)

    assert applied.returncode == 0, applied.stderr
    assert "applied redundant:ix_courses_university_id" in applied.stdout
    assert "ran:  DROP INDEX CONCURRENTLY IF EXISTS public.ix_courses_university_id;" in applied.stdout
    assert not index_exists(migrated_url, "ix_courses_university_id")

    undo = [
        line.removeprefix("  undo: ").removesuffix(";")
        for line in applied.stdout.splitlines()
        if line.startswith("  undo: ")
    ]
    assert (
        undo[-1]
        == "CREATE INDEX CONCURRENTLY ix_courses_university_id ON public.courses USING btree (university_id)"
    )
    with connect(migrated_url) as connection:
        for statement in undo:
            connection.execute(statement)
    assert index_exists(migrated_url, "ix_courses_university_id")
    after = run_cli("review-indexes", "--json", env=cli_env)
    assert "redundant:ix_courses_university_id" in by_id(IndexReviewReport.model_validate_json(after.stdout))


def test_applying_an_index_for_a_foreign_key(migrated_url: URL, settings: Settings) -> None:
    applied = apply_finding(migrated_url, settings, "fk-without-index:fk_audit_logs_actor_id_users")

    assert applied.finding.index == "ix_audit_logs_actor_id"
    assert index_exists(migrated_url, "ix_audit_logs_actor_id")
    findings = by_id(review_indexes(migrated_url, settings))
    assert "fk-without-index:fk_audit_logs_actor_id_users" not in findings
    assert not findings["undeclared-index:ix_audit_logs_actor_id"].sql  # declare it; do not drop it


def test_applying_a_missing_unique_constraint_restores_the_constraint(
    migrated_url: URL, settings: Settings
) -> None:
    with connect(migrated_url) as connection:
        connection.execute("ALTER TABLE universities DROP CONSTRAINT uq_universities_slug")

    apply_finding(migrated_url, settings, "missing-index:uq_universities_slug")

    with connect(migrated_url) as connection:
        kind = connection.execute(
            "SELECT contype FROM pg_constraint WHERE conname = 'uq_universities_slug'"
        ).fetchone()
    assert kind == ("u",)


def test_a_build_that_times_out_behind_a_writer_names_the_invalid_index_left(
    migrated_url: URL, settings: Settings
) -> None:
    quick = settings.model_copy(update={"review_lock_timeout_seconds": 1.0})
    with connect(migrated_url) as writer:
        writer.execute("BEGIN")
        writer.execute("INSERT INTO audit_logs (action, entity_type) VALUES ('login', 'user')")
        with pytest.raises(IndexApplyError) as raised:
            apply_finding(migrated_url, quick, "fk-without-index:fk_audit_logs_actor_id_users")
        writer.execute("ROLLBACK")

    assert "canceling statement due to lock timeout" in str(raised.value)
    assert (
        "the half-built index ix_audit_logs_actor_id is left invalid: run DROP INDEX CONCURRENTLY IF EXISTS "
        "public.ix_audit_logs_actor_id once the blocking transaction ends" in str(raised.value)
    )
    assert "invalid:ix_audit_logs_actor_id" in by_id(review_indexes(migrated_url, settings))


def test_a_build_that_fails_is_dropped_again(migrated_url: URL, settings: Settings) -> None:
    with connect(migrated_url) as connection:
        connection.execute("ALTER TABLE universities DROP CONSTRAINT uq_universities_slug")
        connection.execute(
            "INSERT INTO universities (name, slug) VALUES ('One', 'same-slug'), ('Two', 'same-slug')"
        )

    with pytest.raises(IndexApplyError) as raised:
        apply_finding(migrated_url, settings, "missing-index:uq_universities_slug")

    assert "could not create unique index" in str(raised.value)
    assert "the half-built index uq_universities_slug was dropped again" in str(raised.value)
    with connect(migrated_url) as connection:
        assert (
            connection.execute("SELECT 1 FROM pg_class WHERE relname = 'uq_universities_slug'").fetchone()
            is None
        )


def test_a_finding_still_there_after_applying_is_an_error(migrated_url: URL, settings: Settings) -> None:
    with connect(migrated_url) as connection:
        connection.execute("CREATE TABLE churned (id int PRIMARY KEY) WITH (autovacuum_enabled = off)")
        connection.execute("INSERT INTO churned SELECT generate_series(1, 10000)")
    with connect(migrated_url) as old_reader:
        # A snapshot older than the delete: VACUUM may not remove what it can still see.
        old_reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        old_reader.execute("SELECT count(*) FROM churned")
        with connect(migrated_url) as connection:
            connection.execute("DELETE FROM churned")
            flush_statistics(connection)
        with pytest.raises(IndexApplyError, match=r"was applied to .* but the review still reports it"):
            apply_finding(migrated_url, settings, "vacuum:churned")
        old_reader.execute("ROLLBACK")

    apply_finding(migrated_url, settings, "vacuum:churned")
    assert "vacuum:churned" not in by_id(review_indexes(migrated_url, settings))


def test_apply_waits_for_the_migration_lock_and_changes_nothing_without_it(
    migrated_url: URL, settings: Settings
) -> None:
    impatient = settings.model_copy(update={"migration_lock_timeout_seconds": 0.5})
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with migration_lock(make_engine(migrated_url, settings, purpose="test"), 5):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(MigrationLockTimeoutError):
            apply_finding(migrated_url, impatient, "redundant:ix_courses_university_id")
    finally:
        release.set()
        holder.join()
    assert index_exists(migrated_url, "ix_courses_university_id")


@pytest.fixture
def advice_only_url(migrated_url: URL) -> URL:
    with connect(migrated_url) as connection:
        connection.execute("CREATE INDEX ix_audit_logs_actor_id ON audit_logs (actor_id)")
        connection.execute(
            "CREATE TABLE counters (id int PRIMARY KEY, hits int) WITH (autovacuum_enabled = off)"
        )
        connection.execute("INSERT INTO counters SELECT g, g FROM generate_series(1, 100000) AS g")
        connection.execute("UPDATE counters SET hits = hits + 1")
        connection.execute("VACUUM ANALYZE counters")
    return migrated_url


def test_findings_that_cannot_be_applied_are_refused_with_exit_2(
    advice_only_url: URL, settings: Settings, cli_env: dict[str, str]
) -> None:
    unknown = run_cli("review-indexes", "--apply", "redundant:ix_nothing", env=cli_env)
    assert unknown.returncode == 2
    error = unknown.stderr.strip().splitlines()[-1]
    assert error.startswith("dbops: error: the review of ")
    assert "has no finding redundant:ix_nothing" in error
    assert "Traceback" not in unknown.stderr

    advice = run_cli("review-indexes", "--apply", "undeclared-index:ix_audit_logs_actor_id", env=cli_env)
    assert advice.returncode == 2
    assert "is advice: it has no SQL to apply" in advice.stderr

    loose = settings.model_copy(update={"review_bloat_min_mb": 1.0})
    with pytest.raises(FindingNotApplicableError, match="blocks the table while it runs"):
        apply_finding(advice_only_url, loose, "table-bloat:counters")


def test_cli_json_round_trips_and_refuses_a_password_on_the_command_line(
    seeded_url: URL, cli_env: dict[str, str]
) -> None:
    listed = run_cli("review-indexes", "--json", env=cli_env)
    assert listed.returncode == 0, listed.stderr
    report = IndexReviewReport.model_validate_json(listed.stdout)
    assert "redundant:ix_courses_university_id" in by_id(report)

    text = run_cli("review-indexes", env=cli_env)
    assert text.returncode == 0
    assert "  redundant:ix_courses_university_id\n" in text.stdout
    assert "nothing was changed" in text.stdout

    with_password = run_cli("review-indexes", "--database-url", url_string(seeded_url), env=cli_env)
    assert with_password.returncode == 2
    assert str(seeded_url.password) not in with_password.stderr + with_password.stdout
