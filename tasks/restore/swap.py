"""The statements a restore runs on whole databases: close, end sessions, rename, reopen.

Each is one step of a journaled sequence (:mod:`tasks.restore.journal`), which decides their order
and what happens when one fails or the process dies between two of them. ``ALLOW_CONNECTIONS false``
binds superusers too, so a closed database takes no new session while its old ones are ended.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from models.errors import RestoreError
from tasks.postgres.engine import quote_identifier
from tasks.restore.properties import comment_statement

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
_SESSIONS_GONE_SECONDS = 15.0

DATABASE_EXISTS = text("SELECT 1 FROM pg_database WHERE datname = :name")
ALLOWS_CONNECTIONS = text("SELECT datallowconn FROM pg_database WHERE datname = :name")
# Client sessions and walsenders: either keeps a rename or a drop waiting, then failing. Autovacuum
# workers are the server's own: before PostgreSQL 18 only a superuser may signal them, so a managed
# role's swap would fail on one, and the rename or drop that follows ends them by itself.
_SESSION_KINDS = "backend_type IN ('client backend', 'walsender')"
TERMINATE_SESSIONS = text(f"""
    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE datname = :name AND pid <> pg_backend_pid() AND {_SESSION_KINDS}
""")
REMAINING_SESSIONS = text(f"SELECT count(*) FROM pg_stat_activity WHERE datname = :name AND {_SESSION_KINDS}")
SUPERUSER_SESSIONS = text(f"""
    SELECT a.pid, a.usename FROM pg_stat_activity AS a JOIN pg_roles AS r ON r.oid = a.usesysid
    WHERE a.datname = :name AND r.rolsuper AND a.{_SESSION_KINDS} ORDER BY a.pid
""")


def database_exists(connection: Connection, name: str) -> bool:
    return connection.execute(DATABASE_EXISTS, {"name": name}).first() is not None


def allows_connections(connection: Connection, name: str) -> bool | None:
    """Whether *name* accepts connections; None when there is no such database."""
    allowed = connection.execute(ALLOWS_CONNECTIONS, {"name": name}).scalar()
    return None if allowed is None else bool(allowed)


def allow_connections(connection: Connection, name: str, allowed: bool) -> None:
    connection.exec_driver_sql(
        f"ALTER DATABASE {quote_identifier(name)} ALLOW_CONNECTIONS {'true' if allowed else 'false'}"
    )


def reopen(engine: Engine, name: str, log: Logger) -> bool:
    """Let connections into *name* again, on a connection of its own; False (logged with the
    statement to run) when even that fails. Never raises: it runs while another error is on its way."""
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            if allows_connections(connection, name) is False:
                allow_connections(connection, name, True)
        return True
    except Exception as error:
        log.error(
            "database %s may still refuse connections: run ALTER DATABASE %s ALLOW_CONNECTIONS true (%s)",
            name,
            quote_identifier(name),
            str(error).splitlines()[0],
        )
        return False


def end_sessions(connection: Connection, name: str, log: Logger, *, what: str) -> int:
    """End every client session and walsender on *name* and wait until they are gone; how many.

    *what* says in the error which database this is to the operator ("the target", "the copy").
    A role without superuser cannot end a superuser's session: that is a :class:`RestoreError`
    naming the sessions, raised before anything else is done.
    """
    try:
        ended = int(connection.execute(TERMINATE_SESSIONS, {"name": name}).scalar_one())
    except DBAPIError as error:
        holders = ", ".join(
            f"pid {pid} ({user})" for pid, user in connection.execute(SUPERUSER_SESSIONS, {"name": name})
        )
        raise RestoreError(
            f"could not end the sessions of {what} {name}",
            detail=str(error.orig).splitlines()[0] if error.orig is not None else str(error),
            hint=f"superuser sessions ({holders}) can be ended only by a superuser: end them, or wait "
            "for them, and restore again"
            if holders
            else "end its sessions with pg_terminate_backend and restore again",
        ) from None
    deadline = time.monotonic() + _SESSIONS_GONE_SECONDS
    while connection.execute(REMAINING_SESSIONS, {"name": name}).scalar_one():
        if time.monotonic() > deadline:
            raise RestoreError(
                f"sessions of {what} {name} did not end within {_SESSIONS_GONE_SECONDS:g} s",
                hint="end them with pg_terminate_backend and restore again",
            )
        time.sleep(0.05)
    if ended:
        log.warning("ended %d session(s) of %s %s", ended, what, name)
    return ended


def rename_in_one_transaction(
    engine: Engine, renames: list[tuple[str, str]], comments: Mapping[str, str | None] | None = None
) -> None:
    """Apply *renames* (old, new) and then *comments* (by new name) atomically: all or none (on a
    connection of its own, since an autocommit connection would commit each one)."""
    with engine.begin() as connection:
        for old, new in renames:
            connection.exec_driver_sql(
                f"ALTER DATABASE {quote_identifier(old)} RENAME TO {quote_identifier(new)}"
            )
        for name, comment in (comments or {}).items():
            connection.exec_driver_sql(comment_statement(name, comment))
