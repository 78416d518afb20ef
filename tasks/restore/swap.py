"""The restore's critical section: take a database away from its users and put another in its place.

New connections are blocked (``ALLOW_CONNECTIONS false``, which binds superusers too), existing
sessions are terminated and waited for, and the renames, with the comments saying what each database
now is, happen in one transaction, so the name is never missing and never points at a half-swapped
state. Whatever goes wrong once connections are blocked, a cancel included, lets them in again: a
failed restore must never leave the live database closed to its application.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from models.errors import RestoreError
from tasks.postgres.engine import open_connection, quote_identifier
from tasks.restore.properties import comment_statement

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
_SESSIONS_GONE_SECONDS = 15.0

DATABASE_EXISTS = text("SELECT 1 FROM pg_database WHERE datname = :name")
# Client sessions only. Autovacuum workers are the server's own: before PostgreSQL 18 only a superuser
# may signal them, so a managed role's swap would fail on one, and the rename or drop that follows
# ends them by itself.
TERMINATE_SESSIONS = text("""
    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE datname = :name AND pid <> pg_backend_pid() AND backend_type = 'client backend'
""")
REMAINING_SESSIONS = text("""
    SELECT count(*) FROM pg_stat_activity WHERE datname = :name AND backend_type = 'client backend'
""")
SUPERUSER_SESSIONS = text("""
    SELECT a.pid, a.usename FROM pg_stat_activity AS a JOIN pg_roles AS r ON r.oid = a.usesysid
    WHERE a.datname = :name AND r.rolsuper AND a.backend_type = 'client backend' ORDER BY a.pid
""")


def database_exists(connection: Connection, name: str) -> bool:
    return connection.execute(DATABASE_EXISTS, {"name": name}).first() is not None


def allow_connections(connection: Connection, name: str, allowed: bool) -> None:
    connection.exec_driver_sql(
        f"ALTER DATABASE {quote_identifier(name)} ALLOW_CONNECTIONS {'true' if allowed else 'false'}"
    )


def take_offline(connection: Connection, name: str, log: Logger) -> int:
    """Block new connections to *name* and end the sessions it has; how many were ended.

    If the sessions cannot all be ended (a role without superuser cannot end a superuser's), or
    anything else interrupts, connections are let in again before the error goes on.
    """
    allow_connections(connection, name, False)
    try:
        return _end_sessions(connection, name, log)
    except BaseException:
        reopen(connection, name, log)
        raise


def reopen(connection: Connection, name: str, log: Logger) -> None:
    """Let connections into *name* again, on a fresh connection if this one is broken."""
    try:
        allow_connections(connection, name, True)
        return
    except Exception as error:  # the connection itself may be what failed
        log.warning("reopening %s on a new connection: %s", name, str(error).splitlines()[0])
    try:
        with open_connection(connection.engine, autocommit=True) as fresh:
            allow_connections(fresh, name, True)
    except Exception as error:
        log.error(
            "database %s still refuses connections: run ALTER DATABASE %s ALLOW_CONNECTIONS true (%s)",
            name,
            quote_identifier(name),
            str(error).splitlines()[0],
        )
        raise


def _end_sessions(connection: Connection, name: str, log: Logger) -> int:
    try:
        ended = int(connection.execute(TERMINATE_SESSIONS, {"name": name}).scalar_one())
    except DBAPIError as error:
        holders = ", ".join(
            f"pid {pid} ({user})" for pid, user in connection.execute(SUPERUSER_SESSIONS, {"name": name})
        )
        raise RestoreError(
            f"could not end the sessions of {name}; it accepts connections again and nothing was changed",
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
                f"sessions of {name} did not end within {_SESSIONS_GONE_SECONDS:g} s",
                hint="end them with pg_terminate_backend and retry; the database was left as it was",
            )
        time.sleep(0.05)
    if ended:
        log.warning("ended %d session(s) of database %s", ended, name)
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


def replace(
    engine: Engine,
    *,
    target: str,
    replacement: str,
    moved_to: str,
    comments: Mapping[str, str | None],
    log: Logger,
) -> None:
    """Put *replacement* in *target*'s place and keep the old *target* as *moved_to*, with *comments*
    (by the new names) written in the same transaction."""
    with open_connection(engine, autocommit=True) as connection:
        take_offline(connection, target, log)
        try:
            rename_in_one_transaction(engine, [(target, moved_to), (replacement, target)], comments)
        except BaseException:
            reopen(connection, target, log)
            raise
        allow_connections(connection, target, True)
        allow_connections(connection, moved_to, True)
