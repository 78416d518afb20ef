"""The restore's critical section: take a database away from its users and put another in its place.

New connections are blocked (``ALLOW_CONNECTIONS false``, which binds superusers too), existing
sessions are terminated and waited for, and the renames happen in one transaction, so the name is
never missing and never points at a half-swapped state.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, Engine

from models.errors import RestoreError
from models.settings import Settings
from tasks.postgres.engine import make_engine, open_connection, quote_identifier

_log = logging.getLogger(__name__)
_SESSIONS_GONE_SECONDS = 15.0

DATABASE_EXISTS = text("SELECT 1 FROM pg_database WHERE datname = :name")
TERMINATE_SESSIONS = text("""
    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE datname = :name AND pid <> pg_backend_pid()
""")
REMAINING_SESSIONS = text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name")


def database_exists(connection: Connection, name: str) -> bool:
    return connection.execute(DATABASE_EXISTS, {"name": name}).first() is not None


def allow_connections(connection: Connection, name: str, allowed: bool) -> None:
    connection.exec_driver_sql(
        f"ALTER DATABASE {quote_identifier(name)} ALLOW_CONNECTIONS {'true' if allowed else 'false'}"
    )


def take_offline(
    connection: Connection, name: str, log: logging.Logger | logging.LoggerAdapter[logging.Logger]
) -> int:
    """Block new connections to *name* and end the sessions it has; how many were ended."""
    allow_connections(connection, name, False)
    ended = int(connection.execute(TERMINATE_SESSIONS, {"name": name}).scalar_one())
    deadline = time.monotonic() + _SESSIONS_GONE_SECONDS
    while connection.execute(REMAINING_SESSIONS, {"name": name}).scalar_one():
        if time.monotonic() > deadline:
            allow_connections(connection, name, True)
            raise RestoreError(
                f"sessions of {name} did not end within {_SESSIONS_GONE_SECONDS:g} s",
                hint="end them with pg_terminate_backend and retry; the database was left as it was",
            )
        time.sleep(0.05)
    if ended:
        log.warning("ended %d session(s) of database %s", ended, name)
    return ended


def rename_in_one_transaction(engine: Engine, renames: list[tuple[str, str]]) -> None:
    """Apply *renames* (old, new) atomically: all of them or none (on a connection of its own, since
    an autocommit connection would commit each one)."""
    with engine.begin() as connection:
        for old, new in renames:
            connection.exec_driver_sql(
                f"ALTER DATABASE {quote_identifier(old)} RENAME TO {quote_identifier(new)}"
            )


def swap_in(
    server: URL,
    settings: Settings,
    *,
    target: str,
    replacement: str,
    set_aside_as: str,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> None:
    """Put *replacement* in *target*'s place and keep the old *target* as *set_aside_as*."""
    log = logger or _log
    engine = make_engine(server, settings, purpose="restore swap")
    try:
        with open_connection(engine, autocommit=True) as connection:
            take_offline(connection, target, log)
            try:
                rename_in_one_transaction(engine, [(target, set_aside_as), (replacement, target)])
            except Exception:
                allow_connections(connection, target, True)
                raise
            allow_connections(connection, set_aside_as, True)
    finally:
        engine.dispose()
    log.info("database %s is now the restored copy; the previous one is kept as %s", target, set_aside_as)
