"""The caller's libpq environment never redirects a connection: the URL alone says where dbops goes.

An operator's shell often exports PGPASSWORD, PGUSER, PGDATABASE (a psql habit), or PGSSLMODE and a
service file. libpq reads each of them for any parameter a connection string leaves out, and
PGPASSWORD even wins over the pgpass file dbops hands its children.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from tasks.postgres.embedded import EmbeddedServer
from tests.integration.conftest import admin_connection, run_cli

# Wrong values for every variable dbops sets itself. Hosts stay on loopback or name a socket directory
# that does not exist, so a leak fails the run instead of reaching another machine.
HOSTILE = {
    "PGPASSWORD": "wrong",
    "PGUSER": "nobody",
    "PGHOST": "/nonexistent-socket-directory",
    "PGHOSTADDR": "127.0.0.2",
    "PGPORT": "1",
    "PGDATABASE": "nowhere",
    "PGSERVICE": "nowhere",
    "PGSERVICEFILE": "/nonexistent/pg_service.conf",
    "PGOPTIONS": "-c statement_timeout=1",
    "PGAPPNAME": "not-dbops",
    "PGCONNECT_TIMEOUT": "1",
    "PGTARGETSESSIONATTRS": "standby",
    "PGSSLMODE": "verify-full",
    "PGSSLROOTCERT": "/nonexistent/root.crt",
    "PGSSLCERT": "/nonexistent/client.crt",
    "PGSSLKEY": "/nonexistent/client.key",
    "PGGSSENCMODE": "require",
}


@pytest.fixture
def hostile_env(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return cli_env | HOSTILE | {"DBOPS_BACKUP_URL": str(tmp_path / "backups"), "DBOPS_BCRYPT_ROUNDS": "4"}


def test_backup_rehearse_and_restore_ignore_the_callers_libpq_variables(
    seeded_url: URL, hostile_env: dict[str, str], pg_server: EmbeddedServer
) -> None:
    target = str(seeded_url.database)
    try:
        for command in (
            ["backup"],
            ["rehearse"],
            ["restore", "--target", target, "--confirm", target, "--yes"],
            ["validate"],
            ["archive-logs", "--older-than-days", "1"],
            ["review-indexes"],
        ):
            result = run_cli(*command, env=hostile_env)
            assert result.returncode == 0, (command, result.stderr)
    finally:
        with admin_connection(pg_server) as connection:
            rows = connection.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{target}_pre_restore_%",)
            ).fetchall()
            for (name,) in rows:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_without_a_password_in_the_url_the_operators_pgpassword_is_used(
    migrated_url: URL, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The documented way to keep a password off the command line still works, for children too."""
    password = str(migrated_url.password)
    without = migrated_url._replace(password=None).render_as_string(hide_password=False)
    assert password not in without
    env = cli_env | {"DBOPS_DATABASE_URL": without, "DBOPS_BACKUP_URL": str(tmp_path / "backups")}

    assert run_cli("backup", env=env | {"PGPASSWORD": password}).returncode == 0
    refused = run_cli("backup", env=env | {"PGPASSWORD": "wrong"})
    assert refused.returncode == 2
    assert "password authentication failed" in refused.stderr
