"""The validation on a pool of connections finds exactly what it finds on one, and holds to its pool."""

from __future__ import annotations

import threading
import time

import psycopg
from sqlalchemy.engine import URL

from models.integrity import CheckStatus, IntegrityReport
from models.schema import TABLES
from models.settings import Settings
from tasks.integrity.context import CheckContext
from tasks.integrity.runner import CATALOGUE, run_check
from tasks.postgres.engine import make_engine
from tests.integration.conftest import connect, run_cli
from tests.integration.integrity.test_integrity import _run, failing, validate

UNKNOWN_UNIVERSITY = "00000000-0000-4000-8000-000000000001"
UNKNOWN_USER = "00000000-0000-4000-8000-000000000002"


def _with(settings: Settings, parallelism: int) -> Settings:
    return settings.model_copy(update={"validate_parallelism": parallelism})


def _plant_failures(url: URL) -> None:
    """Orphans under two foreign keys at once (written as a data-only restore with its triggers off
    would), a duplicate under normalisation, and a btree out of order."""
    _run(
        url,
        "SET session_replication_role = replica",
        "INSERT INTO users (email, password_hash, first_name, last_name, university_id) "
        f"VALUES ('orphan@example.org', '!', 'O', 'R', '{UNKNOWN_UNIVERSITY}')",
        "INSERT INTO applications (user_id, course_id) "
        f"SELECT '{UNKNOWN_USER}', id FROM courses ORDER BY code LIMIT 1",
        "SET session_replication_role = DEFAULT",
        "INSERT INTO users (email, password_hash, first_name, last_name) "
        "VALUES ('Admin@Platform.Example', '!', 'A', 'B')",
        "CREATE FUNCTION demo_cmp(bigint, bigint) RETURNS int LANGUAGE sql IMMUTABLE AS "
        "$$ SELECT CASE WHEN $1 < $2 THEN -1 WHEN $1 > $2 THEN 1 ELSE 0 END $$",
        "CREATE OPERATOR CLASS demo_ops FOR TYPE bigint USING btree AS OPERATOR 1 <, OPERATOR 2 <=, "
        "OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 demo_cmp(bigint, bigint)",
        "CREATE INDEX ix_audit_logs_demo ON audit_logs (id demo_ops)",
        "CREATE OR REPLACE FUNCTION demo_cmp(bigint, bigint) RETURNS int LANGUAGE sql IMMUTABLE AS "
        "$$ SELECT CASE WHEN $1 < $2 THEN 1 WHEN $1 > $2 THEN -1 ELSE 0 END $$",
    )


def _findings(report: IntegrityReport) -> list[tuple[str, str, str, list[dict[str, object]]]]:
    return [(c.name, c.status.value, c.detail, c.samples) for c in report.checks if c.name != "row counts"]


def test_many_connections_find_exactly_what_one_finds(seeded_url: URL, settings: Settings) -> None:
    _plant_failures(seeded_url)

    alone = validate(seeded_url, _with(settings, 1))
    pooled = validate(seeded_url, _with(settings, 4))

    assert (alone.parallelism, pooled.parallelism) == (1, 4)
    assert set(failing(pooled)) == {"relations", "uniqueness", "amcheck"}
    assert _findings(pooled) == _findings(alone)
    assert pooled.row_counts == alone.row_counts
    # A table with a foreign key is counted by that key's orphan scan: its orphans are rows too.
    with connect(seeded_url) as connection:
        for table in TABLES:
            exact = connection.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()
            assert exact is not None
            assert pooled.row_counts[table.name] == exact[0], table.name
    relations = failing(pooled)["relations"]
    assert "1 row(s) of users (university_id) -> universities point at no universities row" in relations
    assert "1 row(s) of applications (user_id) -> users point at no users row" in relations
    assert "index ix_audit_logs_demo: item order invariant violated" in failing(pooled)["amcheck"]
    assert "users (email) has 1 value(s) shared by several rows" in failing(pooled)["uniqueness"]
    assert [check.name for check in pooled.checks] == [check.name for check in alone.checks]
    assert not pooled.passed


def test_a_read_that_fails_fails_its_checks_and_no_other(seeded_url: URL, settings: Settings) -> None:
    _run(
        seeded_url,
        "CREATE ROLE partial_reader LOGIN PASSWORD 'reader-password'",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO partial_reader",
        "REVOKE SELECT ON audit_logs FROM partial_reader",
    )
    reader = seeded_url.set(username="partial_reader", password="reader-password")
    try:
        report = validate(reader, _with(settings, 3))
    finally:
        _run(seeded_url, "DROP OWNED BY partial_reader", "DROP ROLE partial_reader")

    denied = "the check could not run: permission denied for table audit_logs"
    assert failing(report) == {
        "relations": denied,
        "amcheck": failing(report)["amcheck"],
        "row counts": denied,
    }
    assert next(c for c in report.checks if c.name == "amcheck").status is CheckStatus.SKIPPED
    assert not report.passed


Observer = psycopg.Connection[tuple[object, ...]]


def _sessions(observer: Observer) -> int:
    """Sessions ever established to the database, once every ended one has reported itself."""
    previous = -1
    for _ in range(100):
        observer.execute("SELECT pg_stat_clear_snapshot()")
        row = observer.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        assert row is not None
        current = int(str(row[0]))
        if current == previous:
            return current
        previous = current
        time.sleep(0.2)
    raise AssertionError("the session count did not settle")


def _validating(observer: Observer) -> int:
    row = observer.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name LIKE 'dbops validate%'"
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_the_pool_opens_at_most_its_size(seeded_url: URL, settings: Settings) -> None:
    with connect(seeded_url) as observer:  # one session, counted before the validation starts
        before = _sessions(observer)
        most_at_once = 0
        done = threading.Event()

        def run() -> None:
            try:
                validate(seeded_url, _with(settings, 2))
            finally:
                done.set()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        while not done.is_set():
            most_at_once = max(most_at_once, _validating(observer))
        worker.join()
        while _validating(observer):
            time.sleep(0.05)
        opened = _sessions(observer) - before

    assert 1 <= most_at_once <= 2
    assert 1 <= opened <= 2, f"{opened} connections for a pool of 2"


def test_a_bad_parallelism_is_one_line_and_exit_2(cli_env: dict[str, str]) -> None:
    for value in ("0", "65", "many"):
        finished = run_cli("validate", env=cli_env | {"DBOPS_VALIDATE_PARALLELISM": value})
        assert finished.returncode == 2, finished.stderr
        assert len(finished.stderr.strip().splitlines()) == 1, finished.stderr
        assert "DBOPS_VALIDATE_PARALLELISM" in finished.stderr
        assert "Traceback" not in finished.stderr


def test_the_cli_prints_the_wall_time_and_the_pool(seeded_url: URL, cli_env: dict[str, str]) -> None:
    finished = run_cli("validate", env=cli_env | {"DBOPS_VALIDATE_PARALLELISM": "3"})
    assert finished.returncode == 0, finished.stderr
    last = finished.stdout.strip().splitlines()[-1]
    assert last.startswith("passed: 0 error(s), 0 warning(s) in ")
    assert last.endswith(" s (wall time, 3 connections; each check's seconds are its own work)")


def test_one_check_runs_alone_without_the_pool(seeded_url: URL, settings: Settings) -> None:
    _plant_failures(seeded_url)
    engine = make_engine(seeded_url, settings, purpose="validate")
    try:
        context = CheckContext(engine=engine, settings=settings, seed_document=None)
        relations = run_check(next(check for check in CATALOGUE if check.name == "relations"), context)
        users = next(table for table in TABLES if table.name == "users")
        assert context.orphan_count(next(iter(users.foreign_key_constraints))) == 1
    finally:
        engine.dispose()
    assert relations.status is CheckStatus.FAILED
    assert "1 row(s) of applications (user_id) -> users point at no users row" in relations.detail
