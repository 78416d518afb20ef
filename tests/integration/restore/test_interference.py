"""What an adversarial operator, a managed role or the server itself does to a restore, and how the
restore stands up to it: production is never left closed, missing or replaced by the wrong database."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr
from sqlalchemy.engine import URL

from models.errors import RestoreError
from models.marks import DatabaseMark, MarkKind, parse_mark
from models.rehearsal import RestoreSummary
from models.settings import Settings, load_settings
from tasks.backup.dump import backup
from tasks.postgres.embedded import EmbeddedServer
from tasks.postgres.guard import guard_key
from tasks.postgres.libpq import connection_parameters
from tasks.restore.leftovers import sweep
from tasks.restore.operator import restore
from tasks.restore.runs import hold_run
from tasks.storage import ObjectStore, open_store
from tests.integration.conftest import (
    ManagedDatabase,
    admin_connection,
    connect,
    drop_databases_like,
    run_cli,
    url_string,
)

KILLED = -9


@pytest.fixture
def env(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return cli_env | {"DBOPS_BACKUP_URL": str(tmp_path / "backups"), "DBOPS_BCRYPT_ROUNDS": "4"}


@pytest.fixture
def platform(seeded_url: URL, pg_server: EmbeddedServer) -> Iterator[str]:
    name = str(seeded_url.database)
    yield name
    drop_databases_like(pg_server, name + "\\_%")


def state(server: EmbeddedServer, name: str) -> tuple[int, bool] | None:
    """*name*'s OID and whether it accepts connections; None when it does not exist."""
    with admin_connection(server) as connection:
        row = connection.execute(
            "SELECT oid::bigint, datallowconn FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
    return None if row is None else (int(str(row[0])), bool(row[1]))


def beside(server: EmbeddedServer, name: str) -> dict[str, DatabaseMark | None]:
    with admin_connection(server) as connection:
        rows = connection.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname LIKE %s",
            (name.replace("_", "\\_") + "\\_%",),
        ).fetchall()
    return {str(row[0]): parse_mark(None if row[1] is None else str(row[1])) for row in rows}


def applications(url: URL) -> int:
    with connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM applications").fetchone()
    assert row is not None
    return int(str(row[0]))


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.startswith("dbops: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_status_reaches_a_target_a_killed_swap_left_closed_and_reopens_it(
    platform: str, env: dict[str, str], pg_server: EmbeddedServer
) -> None:
    assert run_cli("backup", env=env).returncode == 0
    before = state(pg_server, platform)
    killed = run_cli(
        "restore",
        "--target",
        platform,
        "--confirm",
        platform,
        "--yes",
        env=env | {"DBOPS_FAILPOINT": "swap.rename"},
    )
    assert killed.returncode == KILLED
    assert state(pg_server, platform) == (before[0] if before else 0, False), "killed with the target closed"

    status = run_cli("status", env=env)

    assert status.returncode == 0, status.stdout + status.stderr
    assert f"recovered: found the swap of {platform}" in status.stdout
    assert "stopped before 'rename'" in status.stdout
    assert state(pg_server, platform) == before, "the old database, open again"
    assert "revision" in status.stdout


def test_status_says_what_the_job_holding_the_guard_will_do_about_an_interrupted_swap(
    platform: str, env: dict[str, str], pg_server: EmbeddedServer
) -> None:
    assert run_cli("backup", env=env).returncode == 0
    killed = run_cli(
        "restore",
        "--target",
        platform,
        "--confirm",
        platform,
        "--yes",
        env=env | {"DBOPS_FAILPOINT": "swap.reopen"},
    )
    assert killed.returncode == KILLED
    with admin_connection(pg_server) as holder:  # another job holds the guard right now
        holder.execute("SELECT pg_advisory_lock(%s)", (guard_key(platform),))
        status = run_cli("status", env=env)

        assert status.returncode == 1, "the target still refuses connections"
        assert "interrupted:" in status.stdout
        assert f"the swap of {platform}; a dbops job holds its guard now, and the next one will finish" in (
            status.stdout
        )
        assert f"{platform}: refuses connections" in status.stdout
    assert run_cli("status", env=env).returncode == 0, "with the guard free, status finishes the swap"


def test_in_place_over_a_database_with_a_subscription_is_refused_before_anything_is_touched(
    platform: str, env: dict[str, str], pg_server: EmbeddedServer, seeded_url: URL
) -> None:
    assert run_cli("backup", env=env).returncode == 0
    with connect(seeded_url) as connection:
        connection.execute(
            "CREATE SUBSCRIPTION feed CONNECTION 'dbname=nowhere' PUBLICATION upstream "
            "WITH (connect = false, enabled = false, create_slot = false)"
        )
    before = state(pg_server, platform)
    try:
        for mode in ("in-place", "swap"):
            result = run_cli(
                "restore", "--target", platform, "--confirm", platform, "--yes", "--mode", mode, env=env
            )

            assert result.returncode == 2, result.stderr
            line = one_error_line(result.stderr)
            assert f"database {platform} has 1 logical-replication subscription(s)" in line
            assert "nothing was done and it stays open" in line
            assert state(pg_server, platform) == before
            assert beside(pg_server, platform) == {}, "no copy was built"
    finally:
        with connect(seeded_url) as connection:
            connection.execute("ALTER SUBSCRIPTION feed SET (slot_name = NONE)")
            connection.execute("DROP SUBSCRIPTION feed")


def marked(server: EmbeddedServer, name: str, mark: DatabaseMark) -> None:
    with admin_connection(server) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
        connection.execute(f"COMMENT ON DATABASE \"{name}\" IS '{mark.render()}'")


def test_the_sweep_keeps_a_live_runs_copy_however_old_and_drops_a_dead_runs_at_once(
    platform: str, pg_server: EmbeddedServer, settings: Settings
) -> None:
    server = pg_server.url("postgres")
    long_ago = datetime.now(UTC) - timedelta(days=3)
    live, dead, guarded = (
        f"{platform}_restoring_live",
        f"{platform}_restoring_dead",
        f"{platform}_restoring_other",
    )
    other = f"{platform}_other_target"
    with hold_run(server, settings, "live-run"):
        marked(
            pg_server,
            live,
            DatabaseMark(kind=MarkKind.RESTORING, run="live-run", created=long_ago, target=platform),
        )
        marked(
            pg_server,
            dead,
            DatabaseMark(kind=MarkKind.RESTORING, run="dead-run", created=datetime.now(UTC), target=platform),
        )
        marked(
            pg_server,
            guarded,
            DatabaseMark(kind=MarkKind.RESTORING, run="dead-run", created=long_ago, target=other),
        )
        with admin_connection(pg_server) as holder:  # another job holds the guard of `other`
            holder.execute("SELECT pg_advisory_lock(%s)", (guard_key(other),))
            report = sweep(server, settings, run="this-run")

    assert {database.name for database in report.dropped} == {dead}
    assert any(
        f"{guarded}: a dbops job on {other} holds its guard, not dropped" in line for line in report.left
    )
    assert set(beside(pg_server, platform)) == {live, guarded}
    report = sweep(server, settings, run="this-run")  # the live run has ended, the guard is free
    assert {database.name for database in report.dropped} == {live, guarded}


def test_a_mark_is_never_written_blindly_on_a_database_that_is_gone(
    platform: str, pg_server: EmbeddedServer, settings: Settings
) -> None:
    from tasks.postgres.engine import make_engine, open_connection
    from tasks.restore.marks import write_mark

    engine = make_engine(pg_server.url("postgres"), settings, purpose="test")
    mark = DatabaseMark(kind=MarkKind.RESTORING, run="r", created=datetime.now(UTC), target=platform)
    try:
        with (
            open_connection(engine, autocommit=True) as connection,
            pytest.raises(RestoreError, match="is gone"),
        ):
            write_mark(connection, f"{platform}_restoring_missing", 1, mark)
    finally:
        engine.dispose()


@pytest.mark.parametrize("mode", ["swap", "in-place"])
def test_a_setting_the_managed_role_cannot_reapply_is_refused_before_anything_is_touched(
    mode: str, managed: ManagedDatabase, pg_server: EmbeddedServer
) -> None:
    target = str(managed.url.database)
    app = f"app_{uuid.uuid4().hex[:8]}"
    assert run_cli("backup", env=managed.env).returncode == 0
    with admin_connection(pg_server) as connection:  # set by a superuser, as on a managed service
        connection.execute(f"CREATE ROLE {app} LOGIN")
        connection.execute(f"ALTER ROLE {app} IN DATABASE \"{target}\" SET statement_timeout = '30s'")
    before = state(pg_server, target)
    try:
        result = run_cli(
            "restore", "--target", target, "--confirm", target, "--yes", "--mode", mode, env=managed.env
        )

        assert result.returncode == 2, result.stderr
        line = one_error_line(result.stderr)
        assert (
            f"this role could not give the restored {target} its current properties: ALTER ROLE {app}" in line
        )
        assert f"GRANT {app} TO {managed.role} WITH ADMIN OPTION" in line
        assert state(pg_server, target) == before
        assert beside(pg_server, target) == {}
    finally:
        with admin_connection(pg_server) as connection:
            connection.execute(f'ALTER ROLE {app} IN DATABASE "{target}" RESET ALL')
            connection.execute(f"DROP ROLE {app}")


def test_a_second_rollback_exits_2_and_changes_nothing(
    platform: str, env: dict[str, str], pg_server: EmbeddedServer, seeded_url: URL
) -> None:
    assert run_cli("backup", env=env).returncode == 0
    for _ in range(2):
        restored = run_cli("restore", "--target", platform, "--confirm", platform, "--yes", env=env)
        assert restored.returncode == 0, restored.stderr
    first = run_cli("restore", "--rollback", platform, "--confirm", platform, env=env)
    assert first.returncode == 0, first.stderr
    after_first, kept = state(pg_server, platform), beside(pg_server, platform)

    second = run_cli("restore", "--rollback", platform, "--confirm", platform, env=env)

    assert second.returncode == 2, second.stderr
    assert f"{platform} was already rolled back at" in one_error_line(second.stderr)
    assert state(pg_server, platform) == after_first
    assert beside(pg_server, platform) == kept


def test_rollback_refuses_a_target_that_is_no_longer_the_database_the_swap_put_in(
    platform: str, env: dict[str, str], pg_server: EmbeddedServer
) -> None:
    assert run_cli("backup", env=env).returncode == 0
    assert run_cli("restore", "--target", platform, "--confirm", platform, "--yes", env=env).returncode == 0
    with admin_connection(pg_server) as connection:  # someone replaced it by hand since
        connection.execute(f'ALTER DATABASE "{platform}" RENAME TO "{platform}_by_hand"')
        connection.execute(f'CREATE DATABASE "{platform}"')
    before = state(pg_server, platform)

    result = run_cli("restore", "--rollback", platform, "--confirm", platform, env=env)

    assert result.returncode == 2, result.stderr
    assert f"{platform} is no longer the database the restore of" in one_error_line(result.stderr)
    assert state(pg_server, platform) == before


@pytest.fixture
def taken(seeded_url: URL, settings: Settings, tmp_path: Path) -> tuple[Settings, ObjectStore]:
    configured = settings.model_copy(update={"backup_url": str(tmp_path / "backups"), "bcrypt_rounds": 4})
    store = open_store(configured)
    backup(seeded_url, configured, store)
    return configured, store


def test_a_session_on_the_approved_copy_is_ended_before_the_target_is_closed(
    platform: str, taken: tuple[Settings, ObjectStore], pg_server: EmbeddedServer, seeded_url: URL
) -> None:
    settings, store = taken
    inspecting: list[psycopg.Connection[tuple[object, ...]]] = []

    def approve(summary: RestoreSummary) -> bool:  # an operator looks at the copy with psql, and stays
        assert summary.copy_database is not None
        inspecting.append(connect(pg_server.url(summary.copy_database)))
        return True

    result = restore(settings, store, backup_id="latest", target=platform, confirm=platform, approve=approve)

    assert result.previous_database is not None
    assert inspecting[0].closed or _ended(inspecting[0]), "the session on the copy was ended first"
    assert applications(seeded_url) > 0


def _ended(connection: psycopg.Connection[tuple[object, ...]]) -> bool:
    try:
        connection.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_a_session_the_managed_role_cannot_end_on_the_copy_stops_the_swap_before_the_target_is_closed(
    managed: ManagedDatabase, pg_server: EmbeddedServer, tmp_path: Path
) -> None:
    target = str(managed.url.database)
    settings = load_settings(
        _env_file=None,
        database_url=SecretStr(url_string(managed.url)),
        home=tmp_path / "home",
        backup_url=str(tmp_path / "backups"),
        bcrypt_rounds=4,
    )
    store = open_store(settings)
    backup(managed.url, settings, store)
    before = state(pg_server, target)
    superuser: list[psycopg.Connection[tuple[object, ...]]] = []

    def approve(summary: RestoreSummary) -> bool:  # a superuser's psql on the copy
        assert summary.copy_database is not None
        superuser.append(connect(pg_server.url(summary.copy_database)))
        return True

    with pytest.raises(
        RestoreError, match=f"the swap of {target} stopped: could not end the sessions of the replacement"
    ):
        restore(settings, store, backup_id="latest", target=target, confirm=target, approve=approve)

    assert state(pg_server, target) == before, "the target was never closed"
    copies = beside(pg_server, target)
    assert len(copies) == 1, "the approved, checked copy is kept"
    mark = next(iter(copies.values()))
    assert mark is not None
    assert mark.kind is MarkKind.RESTORING
    assert mark.journal is None
    superuser[0].execute("SELECT 1")  # never ended
    superuser[0].close()


def test_a_walsender_on_the_target_is_ended_with_its_sessions(
    platform: str, taken: tuple[Settings, ObjectStore], pg_server: EmbeddedServer, seeded_url: URL
) -> None:
    settings, store = taken
    parameters = connection_parameters(seeded_url, purpose="test", connect_timeout=10)
    walsender = psycopg.connect(make_conninfo("", **parameters, replication="database"), autocommit=True)
    with admin_connection(pg_server) as connection:
        kinds = connection.execute(
            "SELECT backend_type FROM pg_stat_activity WHERE datname = %s", (platform,)
        ).fetchall()
    assert ("walsender",) in kinds

    result = restore(
        settings, store, backup_id="latest", target=platform, confirm=platform, approve=lambda _: True
    )

    assert result.previous_database is not None
    assert _ended(walsender)


def test_a_guard_session_outlives_idle_session_timeout(
    platform: str, env: dict[str, str], pg_server: EmbeddedServer
) -> None:
    with admin_connection(pg_server) as connection:
        connection.execute("ALTER DATABASE postgres SET idle_session_timeout = '2s'")
    try:
        assert run_cli("backup", env=env).returncode == 0
        result = run_cli("restore", "--target", platform, "--confirm", platform, "--yes", env=env)
        assert result.returncode == 0, result.stderr
        assert "the guard" not in result.stderr
        assert "lost" not in result.stderr
    finally:
        with admin_connection(pg_server) as connection:
            connection.execute("ALTER DATABASE postgres RESET idle_session_timeout")


def test_a_lost_guard_stops_the_swap_before_the_step_it_would_take(
    platform: str, taken: tuple[Settings, ObjectStore], pg_server: EmbeddedServer, seeded_url: URL
) -> None:
    settings, store = taken
    before, rows = state(pg_server, platform), applications(seeded_url)
    with connect(seeded_url) as connection:
        connection.execute("DELETE FROM applications")
    stop = threading.Event()

    def reaper() -> None:  # an idle-connection reaper ends the guard's session as soon as it exists
        key = guard_key(platform) & 0xFFFF_FFFF_FFFF_FFFF
        with admin_connection(pg_server) as connection:
            while not stop.is_set():
                connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = %s AND objid = %s AND objsubid = 1",
                    (key >> 32, key & 0xFFFF_FFFF),
                )

    def approve(_: RestoreSummary) -> bool:
        threading.Thread(target=reaper, daemon=True).start()
        return True

    try:
        with pytest.raises(RestoreError, match="lost its guard before the step"):
            restore(settings, store, backup_id="latest", target=platform, confirm=platform, approve=approve)
    finally:
        stop.set()

    assert state(pg_server, platform) == before, "the target stayed where and as it was"
    assert applications(seeded_url) == 0 != rows
