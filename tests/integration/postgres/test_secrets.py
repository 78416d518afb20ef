"""The database password appears in no log line, CLI output, error, repr or process argument."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from models.errors import MigrationLockTimeoutError
from models.settings import Settings
from tasks.postgres.binaries import find_program
from tasks.postgres.command import run_pg_program
from tasks.postgres.engine import make_engine
from tasks.postgres.libpq import child_environment, conninfo
from tasks.schema.drift import detect_drift
from tasks.schema.lock import MIGRATION_LOCK_KEY
from tasks.schema.migrate import migrate
from tests.integration.conftest import connect, run_cli


def test_cli_output_never_shows_the_password(database_url: URL, cli_env: dict[str, str]) -> None:
    password = str(database_url.password)
    env = cli_env | {"DBOPS_LOG_SQL": "true"}
    outputs = [run_cli(*command, env=env) for command in (["migrate"], ["check"], ["status"], ["db-url"])]
    with connect(database_url) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        outputs.append(
            run_cli("migrate", "--to", "base", env=env | {"DBOPS_MIGRATION_LOCK_TIMEOUT_SECONDS": "0.5"})
        )

    assert [output.returncode for output in outputs] == [0, 0, 0, 0, 1]
    assert "dbops:***@" in outputs[3].stdout  # db-url prints the URL, masked
    assert "SELECT" in outputs[0].stderr  # DBOPS_LOG_SQL really logged statements
    for output in outputs:
        assert password not in output.stdout + output.stderr


def test_logs_errors_and_reprs_never_show_the_password(
    settings: Settings, database_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    password = str(database_url.password)
    caplog.set_level(logging.DEBUG)
    logged_settings = settings.model_copy(update={"log_sql": True})

    migrate(database_url, logged_settings)
    detect_drift(database_url, logged_settings)
    with make_engine(database_url, logged_settings, purpose="test").connect() as connection:
        connection.execute(text("SELECT :secret"), {"secret": "value-that-must-not-be-logged"})
    with connect(database_url) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        with pytest.raises(MigrationLockTimeoutError) as failure:
            migrate(database_url, settings.model_copy(update={"migration_lock_timeout_seconds": 0.3}))

    assert "SELECT" in caplog.text
    assert "value-that-must-not-be-logged" not in caplog.text
    assert password not in caplog.text
    assert password not in str(failure.value)
    assert password not in repr(settings)
    assert password not in str(settings.model_dump())


def test_pg_programs_get_the_password_through_a_0600_pgpass_file(
    database_url: URL, pg_bindir: object, caplog: pytest.LogCaptureFixture
) -> None:
    from pathlib import Path

    assert isinstance(pg_bindir, Path)
    psql = find_program("psql", pg_bindir)
    caplog.set_level(logging.DEBUG)
    arguments = ["--dbname", conninfo(database_url, purpose="test"), "--tuples-only", "--command", "SELECT 1"]

    seen_modes: list[int] = []
    with child_environment(database_url) as environment:
        seen_modes.append(Path(environment["PGPASSFILE"]).stat().st_mode & 0o777)
        result = run_pg_program(psql, arguments, environment=environment)
    assert result.returncode == 0
    assert seen_modes == [0o600]
    assert not Path(environment["PGPASSFILE"]).exists(), "the pgpass file must be removed afterwards"
    assert str(database_url.password) not in caplog.text
    assert str(database_url.password) not in " ".join(arguments)
