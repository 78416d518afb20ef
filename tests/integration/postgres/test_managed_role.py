"""As a managed database's role: what RDS, Cloud SQL and Azure give instead of a superuser.

``LOGIN CREATEDB``, member of ``pg_monitor`` and ``pg_signal_backend``, owner of its databases. Every
command either works as that role or fails with one line naming the privilege and the GRANT for it.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL

from tasks.postgres.embedded import EmbeddedServer
from tests.integration.conftest import ManagedDatabase, admin_connection, connect, run_cli


def test_backup_rehearsal_validation_archiving_and_review_work_without_superuser(
    managed: ManagedDatabase,
) -> None:
    for command in (
        ["backup"],
        ["rehearse"],
        ["validate"],
        ["archive-logs", "--older-than-days", "1"],
        ["review-indexes"],
    ):
        result = run_cli(*command, env=managed.env)
        assert result.returncode == 0, (command, result.stderr)


def test_amcheck_it_cannot_create_is_a_warning_naming_the_grant(managed: ManagedDatabase) -> None:
    result = run_cli("validate", "--json", env=managed.env)

    assert result.returncode == 0, result.stderr
    assert '"amcheck"' in result.stdout
    assert "CREATE EXTENSION amcheck" in result.stdout


def test_swap_and_in_place_restore_and_rollback_work_as_the_databases_owner(
    managed: ManagedDatabase,
) -> None:
    target = str(managed.url.database)
    assert run_cli("backup", env=managed.env).returncode == 0
    with connect(managed.url) as connection:
        connection.execute("DELETE FROM applications")

    swapped = run_cli("restore", "--target", target, "--confirm", target, "--yes", env=managed.env)
    assert swapped.returncode == 0, swapped.stderr
    assert count(managed.url, "applications") == 90

    rolled = run_cli("restore", "--rollback", target, "--confirm", target, env=managed.env)
    assert rolled.returncode == 0, rolled.stderr
    assert count(managed.url, "applications") == 0

    in_place = run_cli(
        "restore", "--target", target, "--confirm", target, "--yes", "--mode", "in-place", env=managed.env
    )
    assert in_place.returncode == 0, in_place.stderr
    assert count(managed.url, "applications") == 90


def count(url: URL, table: str) -> int:
    with connect(url) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(str(row[0]))


def test_a_role_that_may_not_create_databases_is_told_the_grant_before_any_download(
    managed: ManagedDatabase, pg_server: EmbeddedServer, tmp_path: Path
) -> None:
    assert run_cli("backup", env=managed.env).returncode == 0
    with admin_connection(pg_server) as connection:
        connection.execute(f"ALTER ROLE {managed.role} NOCREATEDB")

    result = run_cli("rehearse", env=managed.env)

    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"dbops: error: role {managed.role} may not create databases on ")
    assert f"Hint: ALTER ROLE {managed.role} CREATEDB" in error
    assert list((tmp_path / "backups").rglob("rehearsal.json")) == [], "the backup is not to blame"


def test_a_role_that_does_not_own_the_target_is_told_the_grant_and_nothing_changes(
    managed: ManagedDatabase, pg_server: EmbeddedServer
) -> None:
    target = str(managed.url.database)
    assert run_cli("backup", env=managed.env).returncode == 0
    with admin_connection(pg_server) as connection:
        connection.execute(f'ALTER DATABASE "{target}" OWNER TO {pg_server.url().username}')

    result = run_cli("restore", "--target", target, "--confirm", target, "--yes", env=managed.env)

    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert f"role {managed.role} does not own database {target}" in error
    assert f"Hint: ALTER DATABASE {target} OWNER TO {managed.role}" in error
    with admin_connection(pg_server) as connection:
        names = connection.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (target + "%",))
        assert [row[0] for row in names] == [target]
