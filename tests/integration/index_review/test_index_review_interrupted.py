"""``review-indexes --apply`` cut short: by a lock timeout, Ctrl-C or SIGKILL, no INVALID index stays.

A build is made to wait on a transaction held open in another session, and the test acts once
pg_stat_activity shows the build waiting. CREATE INDEX and REINDEX CONCURRENTLY wait for an old
snapshot (a REPEATABLE READ transaction that read another table); DROP INDEX CONCURRENTLY never does,
so the clean-up's drop goes through while the build's blocker still holds. A DROP waits for a
transaction that read its table.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import URL

from models.errors import IndexApplyError
from models.settings import Settings
from tasks.index_review.apply import apply_finding
from tasks.index_review.runner import review_indexes
from tasks.postgres.engine import make_engine
from tasks.schema.lock import migration_lock
from tests.helpers import wait_for
from tests.integration.conftest import connect, run_cli, spawn_cli
from tests.integration.index_review.test_index_review import by_id

Connection = psycopg.Connection[tuple[object, ...]]


def invalid_indexes(url: URL) -> list[str]:
    with connect(url) as connection:
        rows = connection.execute(
            "SELECT i.relname FROM pg_index AS x JOIN pg_class AS i ON i.oid = x.indexrelid "
            "WHERE NOT x.indisvalid AND i.relnamespace = current_schema()::regnamespace ORDER BY 1"
        ).fetchall()
    return [str(row[0]) for row in rows]


@contextmanager
def old_snapshot(url: URL) -> Iterator[Connection]:
    """A transaction whose snapshot a concurrent build waits for, holding no lock on its tables."""
    with connect(url) as reader:
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT count(*) FROM universities")
        yield reader
        reader.execute("ROLLBACK")


@contextmanager
def reading(url: URL, table: str) -> Iterator[Connection]:
    """A transaction holding ACCESS SHARE on *table*: DROP INDEX CONCURRENTLY waits for it."""
    with connect(url) as reader:
        reader.execute("BEGIN")
        reader.execute(f"SELECT count(*) FROM {table}")
        yield reader
        reader.execute("ROLLBACK")


def waiting_build(observer: Connection, client_pid: int, verb: str) -> int:
    """The backend of dbops process *client_pid* once its *verb* statement waits on a lock."""
    found: list[int] = []

    def waiting() -> bool:
        row = observer.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s AND state = 'active' "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            (f"%:{client_pid})", f"{verb}%"),
        ).fetchone()
        if row is not None:
            found.append(int(str(row[0])))
        return row is not None

    wait_for(waiting, f"the {verb} of dbops process {client_pid} never waited")
    return found[0]


def backend_alive(observer: Connection, pid: int) -> bool:
    return observer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is not None


def make_bloated_index(url: URL) -> None:
    with connect(url) as connection:
        connection.execute(
            "CREATE TABLE counters (id int PRIMARY KEY, hits int) WITH (autovacuum_enabled = off)"
        )
        connection.execute("INSERT INTO counters SELECT g, g FROM generate_series(1, 100000) AS g")
        connection.execute("CREATE INDEX ix_counters_hits ON counters (hits)")
        for _ in range(3):
            connection.execute("UPDATE counters SET hits = hits + 100000")
        connection.execute("VACUUM ANALYZE counters")


def make_declared_index_invalid(url: URL) -> None:
    """ix_users_role, as a concurrent build that timed out on an old snapshot leaves it."""
    with connect(url) as connection:
        (definition,) = (
            connection.execute("SELECT pg_get_indexdef('ix_users_role'::regclass)").fetchone() or ()
        )
        connection.execute("DROP INDEX ix_users_role")
        with old_snapshot(url):
            connection.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                connection.execute(str(definition).replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY"))
    assert invalid_indexes(url) == ["ix_users_role"]


@dataclass(frozen=True)
class Case:
    """One kind of --apply: how to set it up, what its build waits for, and what applies it next."""

    finding: str
    prepare: Callable[[URL], None]
    blocker: Callable[[URL], Any]
    verb: str
    then_apply: str


CASES = {
    "fk-index-create": Case(
        "fk-without-index:fk_audit_logs_actor_id_users",
        lambda url: None,
        old_snapshot,
        "CREATE INDEX",
        "fk-without-index:fk_audit_logs_actor_id_users",
    ),
    "bloat-reindex": Case(
        "index-bloat:ix_counters_hits",
        make_bloated_index,
        old_snapshot,
        "REINDEX",
        "index-bloat:ix_counters_hits",
    ),
    "invalid-rebuild": Case(
        "invalid:ix_users_role",
        make_declared_index_invalid,
        old_snapshot,
        "CREATE INDEX",
        "invalid:ix_users_role",
    ),
    "redundant-drop": Case(
        "redundant:ix_courses_university_id",
        lambda url: None,
        lambda url: reading(url, "courses"),
        "DROP INDEX",
        "invalid:ix_courses_university_id",
    ),
}


@pytest.fixture
def bloat_env(cli_env: dict[str, str]) -> dict[str, str]:
    return cli_env | {"DBOPS_REVIEW_BLOAT_MIN_MB": "1"}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_killed_apply_stops_building_and_the_next_apply_leaves_no_invalid_index(
    case: Case, migrated_url: URL, settings: Settings, bloat_env: dict[str, str]
) -> None:
    case.prepare(migrated_url)
    patient = bloat_env | {"DBOPS_REVIEW_LOCK_TIMEOUT_SECONDS": "120"}  # no lock timeout ends the build
    with connect(migrated_url) as observer, case.blocker(migrated_url):
        child = spawn_cli("review-indexes", "--apply", case.finding, env=patient)
        build = waiting_build(observer, child.pid, case.verb)
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)

        # The server notices the dead client and ends the build, though its blocker still holds.
        wait_for(lambda: not backend_alive(observer, build), "the killed client's build went on", 10)
        left = invalid_indexes(migrated_url)
        assert left, "the kill left nothing to clear up; the test proves nothing"
        findings = by_id(
            review_indexes(migrated_url, settings.model_copy(update={"review_bloat_min_mb": 1.0}))
        )
        for name in left:
            assert findings[f"invalid:{name}"].sql, name
            assert "left_by" in findings[f"invalid:{name}"].evidence, name

    applied = run_cli("review-indexes", "--apply", case.then_apply, env=bloat_env)

    assert applied.returncode == 0, applied.stderr
    for name in left:
        assert f"leftover of an earlier run: the half-built index {name} was dropped again" in applied.stdout
    assert invalid_indexes(migrated_url) == []


@pytest.mark.parametrize("kind", ["fk-index-create", "bloat-reindex", "invalid-rebuild"])
def test_ctrl_c_during_a_build_drops_what_it_left_and_exits_130(
    kind: str, migrated_url: URL, bloat_env: dict[str, str]
) -> None:
    case = CASES[kind]
    case.prepare(migrated_url)
    patient = bloat_env | {"DBOPS_REVIEW_LOCK_TIMEOUT_SECONDS": "120"}  # only the Ctrl-C ends the build
    with connect(migrated_url) as observer, case.blocker(migrated_url):
        child = spawn_cli("review-indexes", "--apply", case.finding, env=patient)
        waiting_build(observer, child.pid, case.verb)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)

        assert child.returncode == 130, stderr
        assert "was interrupted" in stderr
        assert "was dropped again" in stderr
        assert invalid_indexes(migrated_url) == []  # while the build's blocker still holds


def test_a_reindex_timed_out_behind_a_writer_names_its_ccnew_and_the_next_apply_drops_it(
    migrated_url: URL, settings: Settings, bloat_env: dict[str, str]
) -> None:
    make_bloated_index(migrated_url)
    quick = settings.model_copy(update={"review_lock_timeout_seconds": 1.0, "review_bloat_min_mb": 1.0})
    with connect(migrated_url) as writer:
        writer.execute("BEGIN")
        writer.execute("INSERT INTO counters VALUES (0, 0)")
        with pytest.raises(IndexApplyError) as raised:
            apply_finding(migrated_url, quick, "index-bloat:ix_counters_hits")
        writer.execute("ROLLBACK")

    assert "canceling statement due to lock timeout" in str(raised.value)
    assert (
        "the half-built index ix_counters_hits_ccnew is left invalid: run DROP INDEX CONCURRENTLY IF EXISTS "
        "public.ix_counters_hits_ccnew once the blocking transaction ends" in str(raised.value)
    )
    findings = by_id(review_indexes(migrated_url, quick))
    leftover = findings["invalid:ix_counters_hits_ccnew"]
    assert leftover.evidence["left_by"] == "an unfinished REINDEX INDEX CONCURRENTLY of ix_counters_hits"
    assert leftover.undo_sql == []
    assert "undeclared-index:ix_counters_hits_ccnew" not in findings

    applied = run_cli("review-indexes", "--apply", "index-bloat:ix_counters_hits", env=bloat_env)

    assert applied.returncode == 0, applied.stderr
    assert "the half-built index ix_counters_hits_ccnew was dropped again" in applied.stdout
    assert invalid_indexes(migrated_url) == []


def test_a_reindex_timed_out_on_an_old_snapshot_drops_its_ccnew_at_once(
    migrated_url: URL, settings: Settings
) -> None:
    make_bloated_index(migrated_url)
    quick = settings.model_copy(update={"review_lock_timeout_seconds": 1.0, "review_bloat_min_mb": 1.0})
    with old_snapshot(migrated_url), pytest.raises(IndexApplyError) as raised:
        apply_finding(migrated_url, quick, "index-bloat:ix_counters_hits")

    assert "the half-built index ix_counters_hits_ccnew was dropped again" in str(raised.value)
    assert invalid_indexes(migrated_url) == []


def test_a_timed_out_rebuild_of_an_invalid_declared_index_drops_it(
    migrated_url: URL, settings: Settings
) -> None:
    make_declared_index_invalid(migrated_url)
    quick = settings.model_copy(update={"review_lock_timeout_seconds": 1.0})
    with old_snapshot(migrated_url), pytest.raises(IndexApplyError) as raised:
        apply_finding(migrated_url, quick, "invalid:ix_users_role")

    assert "the half-built index ix_users_role was dropped again" in str(raised.value)
    assert invalid_indexes(migrated_url) == []
    assert "missing-index:ix_users_role" in by_id(review_indexes(migrated_url, settings))


def test_invalid_indexes_a_live_run_may_be_building_are_not_judged_until_it_ends(
    migrated_url: URL, settings: Settings
) -> None:
    make_declared_index_invalid(migrated_url)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with migration_lock(make_engine(migrated_url, settings, purpose="test"), 5):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        during = review_indexes(migrated_url, settings)
    finally:
        release.set()
        holder.join()
    after = by_id(review_indexes(migrated_url, settings))

    assert "invalid:ix_users_role" not in by_id(during)
    assert any(
        "holds the migration lock" in warning and "ix_users_role" in warning for warning in during.warnings
    )
    assert after["invalid:ix_users_role"].evidence["left_by"] == (
        "an unfinished build of the index the models declare"
    )


def test_the_build_holds_the_migration_lock_on_its_own_session(
    migrated_url: URL, cli_env: dict[str, str]
) -> None:
    patient = cli_env | {"DBOPS_REVIEW_LOCK_TIMEOUT_SECONDS": "120"}  # only the Ctrl-C ends the build
    with connect(migrated_url) as observer, old_snapshot(migrated_url):
        child = spawn_cli(
            "review-indexes", "--apply", "fk-without-index:fk_audit_logs_actor_id_users", env=patient
        )
        try:
            build = waiting_build(observer, child.pid, "CREATE INDEX")
            holders = observer.execute(
                "SELECT l.pid FROM pg_locks AS l WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchall()
        finally:
            child.send_signal(signal.SIGINT)
            child.communicate(timeout=60)

    assert holders == [(build,)]
    assert child.returncode == 130


def test_a_second_ctrl_c_lets_the_drop_of_the_half_built_index_finish(
    migrated_url: URL, cli_env: dict[str, str]
) -> None:
    patient = cli_env | {"DBOPS_REVIEW_LOCK_TIMEOUT_SECONDS": "120"}
    with connect(migrated_url) as observer, connect(migrated_url) as writer:
        writer.execute("BEGIN")
        writer.execute("INSERT INTO audit_logs (action, entity_type) VALUES ('login', 'user')")
        child = spawn_cli(
            "review-indexes", "--apply", "fk-without-index:fk_audit_logs_actor_id_users", env=patient
        )
        waiting_build(observer, child.pid, "CREATE INDEX")
        child.send_signal(signal.SIGINT)
        waiting_build(observer, child.pid, "DROP INDEX")  # the clean-up waits for the writer too
        child.send_signal(signal.SIGINT)
        writer.execute("ROLLBACK")
        _, stderr = child.communicate(timeout=60)

    assert child.returncode == 130, stderr
    assert "interrupted again" in stderr
    assert "the half-built index ix_audit_logs_actor_id was dropped again" in stderr
    assert invalid_indexes(migrated_url) == []
