"""The pg_* command wrapper against real programs: exit codes, stderr tails, --no-password."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from models.errors import BinaryNotFoundError, CommandError
from tasks.postgres.binaries import find_program, major_version
from tasks.postgres.command import run_pg_program
from tasks.postgres.libpq import child_environment, conninfo
from tests.integration.conftest import connect


def test_without_a_password_the_program_fails_at_once_instead_of_prompting(
    database_url: URL, pg_bindir: Path
) -> None:
    psql = find_program("psql", pg_bindir)
    with pytest.raises(CommandError) as failure:
        run_pg_program(
            psql,
            ["--dbname", conninfo(database_url, purpose="test"), "--command", "SELECT 1"],
            timeout_seconds=30,
        )

    assert failure.value.returncode == 2
    assert failure.value.program == "psql"
    assert "no password supplied" in failure.value.stderr_tail
    assert "psql failed with exit code 2" in str(failure.value)


def test_stderr_is_streamed_to_the_logger_and_its_tail_kept(
    database_url: URL, pg_bindir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(CommandError) as failure:
        run_pg_program(find_program("pg_dump", pg_bindir), ["--dbname", "host=127.0.0.1 port=9 dbname=x"])

    assert "Connection refused" in failure.value.stderr_tail
    assert "Connection refused" in caplog.text
    assert failure.value.returncode == 1


def test_stdout_streams_into_the_callers_sink(database_url: URL, pg_bindir: Path) -> None:
    with connect(database_url) as connection:
        connection.execute("CREATE TABLE streamed (note text)")
    sink = io.BytesIO()  # no file descriptor: fed through a pipe
    with child_environment(database_url) as environment:
        run_pg_program(
            find_program("pg_dump", pg_bindir),
            ["--schema-only", "--dbname", conninfo(database_url, purpose="test")],
            stdout=sink,
            environment=environment,
        )
    assert b"CREATE TABLE public.streamed" in sink.getvalue()


def test_a_hanging_program_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    sleeper = tmp_path / "psql"
    sleeper.write_text("#!/bin/sh\nsleep 30 &\nwait\n")
    sleeper.chmod(0o755)
    with pytest.raises(CommandError) as failure:
        run_pg_program(sleeper, [], timeout_seconds=0.5)
    assert "did not finish within 0.5 s" in str(failure.value)


def test_missing_program_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(BinaryNotFoundError) as failure:
        find_program("pg_dump", tmp_path)
    assert f"pg_dump was not found in {tmp_path}" in str(failure.value)
    assert failure.value.exit_code == 2


def test_version_of_the_bundled_programs(pg_bindir: Path) -> None:
    assert major_version(find_program("pg_dump", pg_bindir)) >= 13
