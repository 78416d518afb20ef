"""One guard for every front door: a restore typed in a shell waits for a backup of the same database
started elsewhere, runs at once against another database, and names the holder when it gives up."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.engine import URL

from models.backup import BackupManifest
from models.settings import Settings
from tasks.postgres.embedded import EmbeddedServer
from tasks.postgres.guard import guard_key
from tasks.storage import ObjectStore
from tests.helpers import wait_for
from tests.integration.conftest import admin_connection, connect, run_cli, spawn_cli
from tests.integration.restore.conftest import count, databases


def guard_sessions(server: EmbeddedServer, database: str, *, granted: bool) -> list[str]:
    """Application names of the sessions holding (or waiting for) *database*'s guard."""
    unsigned = guard_key(database) & 0xFFFF_FFFF_FFFF_FFFF
    with admin_connection(server) as connection:
        rows = connection.execute(
            """
            SELECT a.application_name FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.granted = %s
            """,
            (unsigned >> 32, unsigned & 0xFFFF_FFFF, granted),
        ).fetchall()
    return [str(row[0]) for row in rows]


@pytest.fixture
def environment(cli_env: dict[str, str], restore_settings: Settings) -> dict[str, str]:
    return cli_env | {
        "DBOPS_BACKUP_URL": str(restore_settings.backup_url),
        "DBOPS_LOCK_WAIT_TIMEOUT_SECONDS": "120",
    }


def test_a_restore_waits_for_a_backup_of_its_database_and_not_of_another(
    seeded_url: URL,
    target: str,
    taken: tuple[ObjectStore, BackupManifest],
    pg_server: EmbeddedServer,
    environment: dict[str, str],
) -> None:
    _, manifest = taken
    other = f"{target}_other_{uuid.uuid4().hex[:6]}"
    with connect(seeded_url) as blocker:
        # A migration holding a table keeps the nightly backup busy (and holding its guard).
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE applications IN ACCESS EXCLUSIVE MODE")
        backup = spawn_cli("backup", "--no-prune", env=environment)
        wait_for(
            lambda: guard_sessions(pg_server, target, granted=True) != [], "the backup never took its guard"
        )

        restore = spawn_cli("restore", "--target", target, "--confirm", target, "--yes", env=environment)
        wait_for(
            lambda: guard_sessions(pg_server, target, granted=False) != [],
            "the restore never queued behind the backup",
        )
        # Another database's restore has nothing to wait for.
        elsewhere = run_cli(
            "restore", "--target", other, "--confirm", other, "--yes", "--mode", "in-place",
            "--from-database", target, env=environment, timeout=300,
        )  # fmt: skip
        assert elsewhere.returncode == 0, elsewhere.stderr
        assert count(pg_server.url(other), "applications") == manifest.row_counts["applications"]
        assert restore.poll() is None  # still waiting
        assert backup.poll() is None
        blocker.execute("ROLLBACK")

    _, backup_errors = backup.communicate(timeout=300)
    _, restore_errors = restore.communicate(timeout=300)
    assert backup.returncode == 0, backup_errors
    assert restore.returncode == 0, restore_errors
    assert f"restore: waiting up to 3600 s for another dbops job on {target}" in restore_errors
    assert "application_name 'dbops backup" in restore_errors
    with admin_connection(pg_server) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')


def test_a_job_that_waits_too_long_names_the_holder_and_touches_nothing(
    target: str,
    taken: tuple[ObjectStore, BackupManifest],
    pg_server: EmbeddedServer,
    environment: dict[str, str],
) -> None:
    before = databases(pg_server, target)
    with admin_connection(pg_server) as holder:
        holder.execute("SET application_name = 'dbops backup (elsewhere:4242)'")
        holder.execute("SELECT pg_advisory_lock(%s)", (guard_key(target),))
        pid = holder.execute("SELECT pg_backend_pid()").fetchone()
        assert pid is not None
        quick = environment | {"DBOPS_MAINTENANCE_WAIT_TIMEOUT_SECONDS": "2"}
        restore = run_cli("restore", "--target", target, "--confirm", target, "--yes", env=quick)
        rehearse = run_cli("rehearse", env=quick)
        backup = run_cli("backup", env=quick)

    for refused in (restore, backup, rehearse):
        line = refused.stderr.strip().splitlines()[-1]
        assert refused.returncode == 1, refused.stderr
        assert f"waited 2 s for another dbops job on {target}" in line
        assert f"holder: pid {pid[0]}, application_name 'dbops backup (elsewhere:4242)'" in line
    assert databases(pg_server, target) == before
