"""Hand a password to libpq programs without putting it on a command line.

As Patroni does: the connection string carries everything but the password, and the password goes
into a temporary 0600 pgpass file named by ``PGPASSFILE`` in the child's environment. The file is
removed when the program has finished.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import URL


def conninfo(url: URL) -> str:
    """A libpq ``key=value`` connection string for *url*, deliberately without the password."""
    parts = {
        "host": url.host,
        "port": str(url.port) if url.port else None,
        "dbname": url.database,
        "user": url.username,
    }
    return " ".join(f"{key}={_quote(value)}" for key, value in parts.items() if value)


def pgpass_line(url: URL) -> str:
    """One pgpass entry matching exactly the host, port, database and user of *url*."""
    fields = [url.host or "localhost", str(url.port or 5432), url.database or "*", url.username or "*"]
    fields.append(url.password or "")
    return ":".join(_escape(str(field)) for field in fields) + "\n"


@contextmanager
def password_environment(url: URL) -> Iterator[dict[str, str]]:
    """Yield the environment variables a libpq child needs to log in to *url*.

    Empty when the URL carries no password (trust or peer authentication, or a ~/.pgpass of the
    operator's own), so an existing setup is not overridden.
    """
    if not url.password:
        yield {}
        return
    descriptor, name = tempfile.mkstemp(prefix="dbops-", suffix=".pgpass")
    path = Path(name)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(pgpass_line(url))
        yield {"PGPASSFILE": str(path)}
    finally:
        path.unlink(missing_ok=True)


def _quote(value: str) -> str:
    if value and not any(char in value for char in " '\\"):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")
