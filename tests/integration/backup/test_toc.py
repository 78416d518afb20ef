"""The dump check proves table data is in the dump, not merely table definitions."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from models.errors import BackupError
from tasks.backup.toc import DumpCheck
from tasks.postgres.binaries import Program, find_program, program_version
from tasks.postgres.command import run_pg_program
from tasks.postgres.libpq import child_environment, conninfo


def dumped(url: URL, pg_bindir: Path, *extra: str) -> bytes:
    output = io.BytesIO()
    with child_environment(url) as environment:
        run_pg_program(
            find_program("pg_dump", pg_bindir),
            ["--format=custom", *extra, "--dbname", conninfo(url, purpose="test")],
            environment=environment,
            stdout=output,
        )
    return output.getvalue()


def check(dump: bytes, pg_bindir: Path) -> None:
    path = find_program("pg_restore", pg_bindir)
    with DumpCheck(Program(path, program_version(path), "test"), logging.getLogger("test"), 60) as checker:
        for start in range(0, len(dump), 65536):
            checker.feed(dump[start : start + 65536])
        checker.verify()


def test_a_dump_with_table_data_passes(seeded_url: URL, pg_bindir: Path) -> None:
    check(dumped(seeded_url, pg_bindir), pg_bindir)


def test_a_dump_of_table_definitions_alone_fails(seeded_url: URL, pg_bindir: Path) -> None:
    with pytest.raises(BackupError, match="lists no table data, so it would restore no rows"):
        check(dumped(seeded_url, pg_bindir, "--schema-only"), pg_bindir)
