"""``dbops migrate`` against a real server: the lock, timeouts, guards and their error messages."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import URL

from models.errors import DowngradeRefusedError, MigrationError
from models.results import MigrationDirection
from models.settings import Environment, Settings
from tasks.schema.lock import MIGRATION_LOCK_KEY
from tasks.schema.migrate import head_revision, migrate
from tests.integration.conftest import REPO_ROOT, connect, run_cli, spawn_cli


def alembic_versions(url: URL) -> list[str]:
    with connect(url) as connection:
        return [str(row[0]) for row in connection.execute("SELECT version_num FROM alembic_version")]


def tables(url: URL) -> set[str]:
    with connect(url) as connection:
        rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {str(row[0]) for row in rows}


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("dbops: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# Advisory locks behave alike on every supported major; the second pass of make test leaves this out.
@pytest.mark.any_major
@pytest.mark.parametrize("attempt", range(3))
def test_eight_simultaneous_migrations_apply_it_exactly_once(
    attempt: int, database_url: URL, cli_env: dict[str, str]
) -> None:
    processes = [spawn_cli("migrate", env=cli_env) for _ in range(8)]
    outputs = [process.communicate(timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0] * 8, outputs
    upgraded = [stdout for stdout, _ in outputs if "upgrade base -> " in stdout]
    already = [stdout for stdout, _ in outputs if "nothing to do" in stdout]
    assert len(upgraded) == 1, outputs
    assert len(already) == 7, outputs
    assert alembic_versions(database_url) == [head_revision()]


def test_a_held_lock_makes_the_next_run_fail_naming_the_holder(
    database_url: URL, cli_env: dict[str, str]
) -> None:
    with connect(database_url) as holder:
        holder.execute("SET application_name = 'incident-holder'")
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        holder_pid = holder.info.backend_pid

        started = time.monotonic()
        result = run_cli("migrate", env=cli_env | {"DBOPS_MIGRATION_LOCK_TIMEOUT_SECONDS": "1.5"})
        waited = time.monotonic() - started

    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "held the migration lock for more than 1.5 s" in line
    assert f"pid {holder_pid}" in line
    assert "application_name 'incident-holder'" in line
    assert "since 20" in line  # an ISO timestamp of when the holder took the lock
    assert waited >= 1.5
    assert tables(database_url) == set(), "nothing may be migrated without the lock"


def test_a_waiting_run_proceeds_once_the_holder_releases(database_url: URL, cli_env: dict[str, str]) -> None:
    with connect(database_url) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        runner = spawn_cli("migrate", env=cli_env)
        time.sleep(1.0)
        assert runner.poll() is None, "the run must wait for the lock, not fail or skip it"
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        stdout, stderr = runner.communicate(timeout=60)

    assert runner.returncode == 0, stderr
    assert "upgrade base -> " in stdout
    assert alembic_versions(database_url) == [head_revision()]


def test_ddl_gives_up_after_the_lock_timeout_instead_of_queueing(
    settings: Settings, database_url: URL
) -> None:
    migrate(database_url, settings)
    impatient = settings.model_copy(update={"ddl_lock_timeout_seconds": 0.5, "migration_lock_retries": 0})
    with connect(database_url) as application:
        application.autocommit = False
        application.execute("SELECT count(*) FROM users")  # holds ACCESS SHARE until the transaction ends
        started = time.monotonic()
        with pytest.raises(MigrationError) as failure:
            migrate(database_url, impatient, target="base")
        elapsed = time.monotonic() - started
        application.rollback()

    assert "lock timeout" in str(failure.value)
    assert "SQLSTATE 55P03" in str(failure.value)
    assert "DBOPS_DDL_LOCK_TIMEOUT_SECONDS" in str(failure.value)
    assert elapsed < 10
    # 0002 touches only courses and applications: its downgrade committed on its own; 0001's rolled back.
    assert alembic_versions(database_url) == ["0001"], "the failed revision must roll back"


def test_migrate_to_a_revision_downgrades_and_upgrades(settings: Settings, database_url: URL) -> None:
    first = migrate(database_url, settings)
    assert first.direction is MigrationDirection.UPGRADE
    assert "users" in tables(database_url)

    down = migrate(database_url, settings, target="base")
    assert down.direction is MigrationDirection.DOWNGRADE
    assert down.revision_after is None
    assert tables(database_url) == {"alembic_version", "dbops_applied_revisions"}  # the bookkeeping stays

    again = migrate(database_url, settings, target=head_revision())
    assert again.revision_after == head_revision()


def test_production_downgrade_needs_explicit_permission(settings: Settings, database_url: URL) -> None:
    migrate(database_url, settings)
    production = settings.model_copy(update={"environment": Environment.PRODUCTION})

    with pytest.raises(DowngradeRefusedError) as refused:
        migrate(database_url, production, target="base")
    assert "--allow-downgrade" in str(refused.value)
    assert alembic_versions(database_url) == [head_revision()]

    allowed = migrate(database_url, production, target="base", allow_downgrade=True)
    assert allowed.direction is MigrationDirection.DOWNGRADE


def test_production_downgrade_from_the_cli_exits_2(settings: Settings, cli_env: dict[str, str]) -> None:
    assert run_cli("migrate", env=cli_env).returncode == 0
    result = run_cli("migrate", "--to", "base", env=cli_env | {"DBOPS_ENVIRONMENT": "production"})
    assert result.returncode == 2
    assert "refusing to downgrade" in one_error_line(result.stderr)


def test_a_database_ahead_of_the_code_is_reported(settings: Settings, database_url: URL) -> None:
    migrate(database_url, settings)
    with connect(database_url) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'f00dfeed'")

    with pytest.raises(MigrationError) as failure:
        migrate(database_url, settings)
    assert "revision f00dfeed, which this code does not know" in str(failure.value)


def test_unknown_target_revision_is_bad_input(cli_env: dict[str, str], database_url: URL) -> None:
    result = run_cli("migrate", "--to", "nope", env=cli_env)
    assert result.returncode == 2
    assert "no migration revision named 'nope'" in one_error_line(result.stderr)
    assert tables(database_url) == set()


def test_non_postgresql_url_is_refused_before_anything_runs(cli_env: dict[str, str]) -> None:
    result = run_cli("migrate", env=cli_env | {"DBOPS_DATABASE_URL": "mysql://app:hunter2secret@db/app"})
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "uses 'mysql', but dbops only manages PostgreSQL" in line
    assert "hunter2secret" not in result.stderr + result.stdout


def test_unreachable_server_is_one_line_and_exit_2(cli_env: dict[str, str]) -> None:
    dead = "postgresql://app:hunter2secret@127.0.0.1:9/app"
    result = run_cli(
        "migrate", env=cli_env | {"DBOPS_DATABASE_URL": dead, "DBOPS_CONNECT_TIMEOUT_SECONDS": "2"}
    )
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "cannot connect to PostgreSQL database app on 127.0.0.1:9 as app" in line
    assert "hunter2secret" not in result.stderr + result.stdout


def test_wrong_password_is_one_line_and_exit_2(database_url: URL, cli_env: dict[str, str]) -> None:
    wrong = database_url.set(password="not-the-password").render_as_string(hide_password=False)
    result = run_cli("migrate", env=cli_env | {"DBOPS_DATABASE_URL": wrong})
    assert result.returncode == 2
    assert "password authentication failed" in one_error_line(result.stderr)
    assert "not-the-password" not in result.stderr


def test_check_reports_a_column_added_by_hand(database_url: URL, cli_env: dict[str, str]) -> None:
    assert run_cli("migrate", env=cli_env).returncode == 0
    clean = run_cli("check", env=cli_env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "schema matches the models" in clean.stdout

    with connect(database_url) as connection:
        connection.execute("ALTER TABLE users ADD COLUMN nickname text")
    drifted = run_cli("check", env=cli_env)

    assert drifted.returncode == 1
    assert "column users.nickname is in the database but not in the models" in drifted.stdout


def test_check_reports_a_database_behind_head(cli_env: dict[str, str]) -> None:
    result = run_cli("check", env=cli_env)
    assert result.returncode == 1
    assert f"the code's head is {head_revision()}: run dbops migrate" in result.stdout


def test_plain_alembic_command_uses_the_same_settings_and_lock(
    database_url: URL, cli_env: dict[str, str]
) -> None:
    alembic = [str(Path(sys.executable).with_name("alembic")), "upgrade", "head"]
    with connect(database_url) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        blocked = subprocess.run(
            alembic,
            env=cli_env | {"DBOPS_MIGRATION_LOCK_TIMEOUT_SECONDS": "1"},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert blocked.returncode != 0
    assert "held the migration lock" in blocked.stderr
    assert tables(database_url) == set()

    done = subprocess.run(alembic, env=cli_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert alembic_versions(database_url) == [head_revision()]


def test_status_shows_revision_and_tables(cli_env: dict[str, str]) -> None:
    assert run_cli("migrate", env=cli_env).returncode == 0
    result = run_cli("status", env=cli_env)
    assert result.returncode == 0
    assert f"revision {head_revision()} (at head)" in result.stdout
    assert "applications" in result.stdout


def test_lock_is_per_database(settings: Settings, database_url: URL, pg_server: object) -> None:
    """Holding the lock in another database does not block this one."""
    with psycopg.connect(
        host=database_url.host,
        port=database_url.port,
        user=database_url.username,
        password=database_url.password,
        dbname="postgres",
        autocommit=True,
    ) as other_database:
        other_database.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        quick = settings.model_copy(update={"migration_lock_timeout_seconds": 1})
        assert migrate(database_url, quick).revision_after == head_revision()


def test_raw_sql_inserts_get_the_same_defaults_as_the_orm(settings: Settings, database_url: URL) -> None:
    migrate(database_url, settings)
    with connect(database_url) as connection:
        row = connection.execute(
            "INSERT INTO users (email, password_hash, first_name, last_name) "
            "VALUES ('a@example.org', 'x', 'A', 'B') "
            "RETURNING role::text, status::text, id IS NOT NULL, "
            "created_at IS NOT NULL, updated_at IS NOT NULL"
        ).fetchone()
        application_status = connection.execute(
            "SELECT column_default FROM information_schema.columns "
            "WHERE table_name = 'applications' AND column_name = 'status'"
        ).fetchone()
    assert row == ("STUDENT", "PENDING", True, True, True)
    assert application_status is not None
    assert str(application_status[0]).startswith("'DRAFT'")


def test_a_holder_hidden_from_the_migrating_role_is_not_called_local(
    database_url: URL, cli_env: dict[str, str]
) -> None:
    """The database's owner may migrate without pg_read_all_stats; another role's session then shows it
    no client address or times, which the message must not pass off as a local connection."""
    role, password = f"owner_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with connect(database_url) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        admin.execute(f'ALTER DATABASE "{database_url.database}" OWNER TO {role}')
    owner_url = database_url.set(username=role, password=password)
    try:
        with connect(database_url) as holder:
            holder.execute("SET application_name = 'incident-holder'")
            holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            result = run_cli(
                "migrate",
                env=cli_env
                | {
                    "DBOPS_DATABASE_URL": owner_url.render_as_string(hide_password=False),
                    "DBOPS_MIGRATION_LOCK_TIMEOUT_SECONDS": "0.5",
                },
            )
    finally:
        with connect(database_url) as admin:
            admin.execute(f'ALTER DATABASE "{database_url.database}" OWNER TO CURRENT_USER')
            admin.execute(f"DROP ROLE {role}")

    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "application_name 'incident-holder'" in line
    assert "client hidden from this role (GRANT pg_read_all_stats to see it)" in line
    assert "client local" not in line
