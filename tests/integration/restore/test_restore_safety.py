"""Restore safety: a failed swap reopens the live database, the replacement keeps the database's own
properties, rollback puts back exactly what was set aside, and in place never opens a half-filled
database to the application."""

from __future__ import annotations

import os
import pwd
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import URL

from models.errors import RestoreError, RestoreRefusedError
from models.marks import DatabaseMark, MarkKind, parse_mark
from models.rehearsal import RestoreMode
from models.settings import Settings
from tasks.backup.dump import backup
from tasks.postgres.embedded import SERVER_SYSTEM_USER, EmbeddedServer
from tasks.restore.operator import restore
from tasks.restore.rollback import rollback
from tasks.storage import open_store
from tests.integration.conftest import (
    ManagedDatabase,
    admin_connection,
    connect,
    drop_databases_like,
    run_cli,
    url_string,
)


def allows_connections(server: EmbeddedServer, name: str) -> bool:
    with admin_connection(server) as connection:
        row = connection.execute(
            "SELECT datallowconn FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
    assert row is not None
    return bool(row[0])


def test_a_superusers_session_fails_the_swap_with_one_line_and_the_target_stays_open(
    managed: ManagedDatabase, pg_server: EmbeddedServer
) -> None:
    target = str(managed.url.database)
    assert run_cli("backup", env=managed.env).returncode == 0
    with connect(pg_server.url(target)) as superuser_session:  # a superuser's session on the target
        pid = superuser_session.info.backend_pid
        result = run_cli("restore", "--target", target, "--confirm", target, "--yes", env=managed.env)

        assert result.returncode == 1, result.stderr
        error = result.stderr.strip().splitlines()[-1]
        assert error.startswith(
            f"dbops: error: the swap of {target} stopped: could not end the sessions of the target "
            f"{target}; {target} accepts connections as before, and the checked copy {target}_restoring_"
        )
        assert f"pid {pid} (dbops)" in error
        assert allows_connections(pg_server, target)
        superuser_session.execute("SELECT 1")  # never ended
    with admin_connection(pg_server) as connection:
        left = connection.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname LIKE %s",
            (target + "_%",),
        ).fetchall()
    assert len(left) == 1, "the approved, checked copy is kept for another try, never dropped"
    mark = parse_mark(str(left[0][1]))
    assert mark is not None
    assert mark.kind is MarkKind.RESTORING
    assert mark.journal is None
    assert mark.held_until is not None
    assert mark.held_until > datetime.now(UTC)
    assert allows_connections(pg_server, str(left[0][0])), "the copy was reopened too"


def test_the_replacement_keeps_owner_acl_settings_comment_and_tablespace(
    seeded_url: URL, target: str, restore_settings: Settings, pg_server: EmbeddedServer, tmp_path: Path
) -> None:
    app = f"app_{uuid.uuid4().hex[:8]}"
    space = f"space_{uuid.uuid4().hex[:8]}"
    location = tmp_path / space
    location.mkdir()
    _give_to_server(location)
    with admin_connection(pg_server) as connection:
        connection.execute(f"CREATE ROLE {app} LOGIN")
        connection.execute(f"CREATE TABLESPACE {space} LOCATION '{location}'")
    store = open_store(restore_settings)
    backup(seeded_url, restore_settings, store)
    with admin_connection(pg_server) as connection:
        connection.execute(f'ALTER DATABASE "{target}" SET TABLESPACE {space}')
        connection.execute(f'ALTER DATABASE "{target}" OWNER TO {app}')
        connection.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{target}" FROM PUBLIC')
        connection.execute(f'GRANT CONNECT ON DATABASE "{target}" TO {app}')
        connection.execute(f"ALTER DATABASE \"{target}\" SET work_mem = '64MB'")
        connection.execute(f'ALTER DATABASE "{target}" SET search_path = "$user", public, extensions')
        connection.execute(f"ALTER ROLE {app} IN DATABASE \"{target}\" SET statement_timeout = '5s'")
        connection.execute(f"COMMENT ON DATABASE \"{target}\" IS 'the platform''s database'")
        connection.execute(f'ALTER DATABASE "{target}" CONNECTION LIMIT 50')
    before = properties(pg_server, target)

    try:
        restore(restore_settings, store, backup_id="latest", target=target, confirm=target)
        assert properties(pg_server, target) == before
        restore(
            restore_settings,
            store,
            backup_id="latest",
            target=target,
            confirm=target,
            mode=RestoreMode.IN_PLACE,
        )
        assert properties(pg_server, target) == before
    finally:
        drop_databases_like(pg_server, target + "%")
        with admin_connection(pg_server) as connection:
            connection.execute(f"DROP TABLESPACE IF EXISTS {space}")
            connection.execute(f"DROP ROLE IF EXISTS {app}")


def properties(server: EmbeddedServer, name: str) -> dict[str, object]:
    with admin_connection(server) as connection:
        row = connection.execute(
            """
            SELECT pg_get_userbyid(d.datdba), t.spcname, shobj_description(d.oid, 'pg_database'),
                   d.datconnlimit, d.datcollate, d.datctype, pg_encoding_to_char(d.encoding),
                   (SELECT array_agg(a::text ORDER BY a::text) FROM aclexplode(d.datacl) AS a),
                   (SELECT array_agg(setting ORDER BY setting) FROM (
                       SELECT coalesce(r.rolname, '') || ':' || c AS setting
                    FROM pg_db_role_setting AS s LEFT JOIN pg_roles AS r ON r.oid = s.setrole,
                         unnest(s.setconfig) AS c
                    WHERE s.setdatabase = d.oid) AS settings)
            FROM pg_database AS d JOIN pg_tablespace AS t ON t.oid = d.dattablespace
            WHERE d.datname = %s
            """,
            (name,),
        ).fetchone()
    assert row is not None
    keys = ("owner", "tablespace", "comment", "limit", "collate", "ctype", "encoding", "acl", "settings")
    return dict(zip(keys, row, strict=True))


def _give_to_server(location: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_SYSTEM_USER)
        os.chown(location, entry.pw_uid, entry.pw_gid)
        for parent in location.parents:
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o011)


def test_rollback_needs_confirmation_and_puts_back_exactly_what_was_set_aside(
    seeded_url: URL, target: str, restore_settings: Settings, pg_server: EmbeddedServer
) -> None:
    store = open_store(restore_settings)
    backup(seeded_url, restore_settings, store)
    with connect(seeded_url) as connection:
        connection.execute("DELETE FROM applications")
    result = restore(restore_settings, store, backup_id="latest", target=target, confirm=target)
    assert result.previous_database is not None
    # A database named like a set-aside copy, newer by its name, but not marked by dbops.
    impostor = result.previous_database[:-6] + "999999"
    with admin_connection(pg_server) as connection:
        connection.execute(f'CREATE DATABASE "{impostor}"')

    with pytest.raises(RestoreRefusedError, match=f"rolling {target} back needs --confirm {target}"):
        rollback(restore_settings, target, confirm=None)
    rolled = rollback(restore_settings, target, confirm=target)

    assert rolled.restored_from == result.previous_database
    assert rolled.set_aside_at is not None
    with connect(seeded_url) as connection:
        assert connection.execute("SELECT count(*) FROM applications").fetchone() == (0,)
    with admin_connection(pg_server) as connection:
        comment = connection.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (target,)
        ).fetchone()
    assert comment == (None,), "the target's own comment (none) is back, not the mark"


def test_rollback_never_confuses_two_long_names_that_share_a_prefix(
    pg_server: EmbeddedServer, restore_settings: Settings
) -> None:
    stem = "platform_" + "x" * 40
    first, second = f"{stem}_first", f"{stem}_second"
    server = pg_server.url("postgres")
    with admin_connection(pg_server) as connection:
        for name in (first, second, f"{second}_aside"):
            connection.execute(f'CREATE DATABASE "{name}"')
        mark = DatabaseMark(kind=MarkKind.SET_ASIDE, run="test", created=datetime.now(UTC), target=second)
        connection.execute(f"COMMENT ON DATABASE \"{second}_aside\" IS '{mark.render()}'")
    env_settings = restore_settings.model_copy(update={"database_url": SecretStr(url_string(server))})
    try:
        with pytest.raises(RestoreRefusedError, match=f"there is nothing to roll back for {first}"):
            rollback(env_settings, first, confirm=first)
        rolled = rollback(env_settings, second, confirm=second)
        assert rolled.restored_from == f"{second}_aside"
    finally:
        drop_databases_like(pg_server, stem + "%")


def test_in_place_keeps_the_target_closed_until_checked_and_closed_when_checks_fail(
    seeded_url: URL, target: str, restore_settings: Settings, pg_server: EmbeddedServer
) -> None:
    store = open_store(restore_settings)
    backup(seeded_url, restore_settings, store)
    seen: list[str] = []
    stop = threading.Event()

    def application() -> None:  # keeps trying to connect while the restore runs
        while not stop.is_set():
            try:
                with connect(seeded_url) as connection:
                    rows = connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                    seen.append(f"connected, {rows.fetchone()} tables")
            except Exception as error:  # the database is gone while it is rebuilt
                seen.append(type(error).__name__)

    watcher = threading.Thread(target=application)
    watcher.start()
    try:
        restore(
            restore_settings,
            store,
            backup_id="latest",
            target=target,
            confirm=target,
            mode=RestoreMode.IN_PLACE,
        )
    finally:
        stop.set()
        watcher.join()
    with connect(seeded_url) as connection:
        tables = connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    partial = [
        entry for entry in seen if entry.startswith("connected") and entry != f"connected, {tables} tables"
    ]
    assert partial == [], "no connection ever saw a half-restored database"
    assert any(not entry.startswith("connected") for entry in seen), "the application was shut out meanwhile"

    failing = restore_settings.model_copy(update={"seed_file": Path("/nonexistent/seed.yaml")})
    with pytest.raises(RestoreError, match=f"so {target} does not exist now; the copy is kept as"):
        restore(failing, store, backup_id="latest", target=target, confirm=target, mode=RestoreMode.IN_PLACE)
    with admin_connection(pg_server) as connection:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (target + "%",)
            )
        ]
    assert target not in names
