"""Clearing up after a build: stop it if it still runs, then drop the invalid indexes it left.

Every index statement ``--apply`` runs can leave an invalid index: ``CREATE INDEX CONCURRENTLY`` its
own, ``REINDEX ... CONCURRENTLY`` a ``_ccnew``/``_ccold`` companion, ``DROP INDEX CONCURRENTLY`` the
index it was dropping. Whatever ends the statement (an error, a lock timeout, Ctrl-C), the indexes
dropped here are found in the catalogue on the finding's table, by name (:func:`left_by_build_of`)
*and* ``indisvalid = false`` *and* no build in progress on them: a valid index is never dropped.

A drop is bounded by the same ``lock_timeout`` as the build. When the transaction that blocked the
build still runs, the drop fails as well; the leftover is then named, and the next ``--apply`` drops
it (:mod:`tasks.index_review.leftovers`).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError

from models.errors import DbopsError
from models.settings import Settings
from tasks.index_review import statements
from tasks.index_review.leftovers import left_by_build_of
from tasks.postgres.engine import make_engine, open_connection
from tasks.schema.lock import migration_lock_on

#: How long a cancelled build may take to stop, and a fresh session to get the migration lock after it.
SETTLE_SECONDS = 10.0
_POLL_SECONDS = 0.05

_INVALID_ON_TABLE = text("""
    SELECT n.nspname AS schema, i.relname AS name
    FROM pg_index AS x
    JOIN pg_class AS i ON i.oid = x.indexrelid
    JOIN pg_class AS t ON t.oid = x.indrelid
    JOIN pg_namespace AS n ON n.oid = t.relnamespace
    WHERE n.nspname = current_schema() AND t.relname = :table AND NOT x.indisvalid
      AND x.indexrelid NOT IN (SELECT index_relid FROM pg_stat_progress_create_index)
    ORDER BY i.relname
""")
_STILL_INVALID = text("""
    SELECT 1 FROM pg_index AS x
    JOIN pg_class AS i ON i.oid = x.indexrelid
    JOIN pg_namespace AS n ON n.oid = i.relnamespace
    WHERE n.nspname = :schema AND i.relname = :name AND NOT x.indisvalid
      AND x.indexrelid NOT IN (SELECT index_relid FROM pg_stat_progress_create_index)
""")
_RUNNING = text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid AND state = 'active' AND query = :statement")


def drop_half_built(connection: Connection, settings: Settings, table: str, index: str) -> list[str]:
    """Drop the invalid indexes a build of *index* on *table* left, saying what became of each."""
    rows = connection.execute(_INVALID_ON_TABLE, {"table": table}).all()
    return [
        _drop_invalid(connection, settings, row.schema, row.name)
        for row in rows
        if left_by_build_of(row.name, index)
    ]


def clear_failed_build(
    connection: Connection,
    build_pid: int,
    statement: str,
    url: URL,
    settings: Settings,
    table: str,
    index: str,
) -> list[str]:
    """After *statement* ended abnormally on *connection* (backend *build_pid*), drop what it left.

    Where the connection is still usable it holds the migration lock, and the drop runs on it. Where
    it was closed (SQLAlchemy closes a connection whose statement was interrupted), a fresh session
    cancels the statement should it still run, then takes the migration lock: that lock was held by
    the build's session, so getting it proves the build's backend has ended.
    """
    if not (connection.invalidated or connection.closed):
        return drop_half_built(connection, settings, table, index)
    engine = make_engine(url, settings, purpose="index apply cleanup")
    try:
        with open_connection(engine, autocommit=True) as fresh:
            _cancel_if_running(fresh, build_pid, statement)
            with migration_lock_on(fresh, SETTLE_SECONDS):
                return drop_half_built(fresh, settings, table, index)
    except (DbopsError, DBAPIError) as error:
        return [
            f"could not clear up after it ({_first_line(error)}): the next dbops review-indexes --apply "
            f"drops what the build of {index} left"
        ]
    finally:
        engine.dispose()


@contextmanager
def interrupts_deferred(
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> Iterator[list[int]]:
    """Run the block to its end even if Ctrl-C is pressed (again); the list yielded collects the
    signals that came meanwhile, for the caller to act on once the block is done.

    The block is a clean-up bounded by ``lock_timeout``: cut short, it would leave the very index it
    is there to drop. Signals reach only the main thread, so elsewhere nothing is deferred.
    """
    pressed: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pressed
        return

    def remember(signum: int, frame: FrameType | None) -> None:
        pressed.append(signum)
        log.warning("interrupted again: clearing up the half-built index first (bounded by lock_timeout)")

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def _cancel_if_running(connection: Connection, pid: int, statement: str) -> None:
    """Cancel *statement* on backend *pid* if it still runs, and wait (bounded) until it stops."""
    deadline = time.monotonic() + SETTLE_SECONDS
    cancelled = False
    while connection.execute(_RUNNING, {"pid": pid, "statement": statement}).first() is not None:
        if not cancelled:
            connection.execute(text("SELECT pg_cancel_backend(:pid)"), {"pid": pid})
            cancelled = True
        if time.monotonic() > deadline:
            return  # the migration lock wait that follows fails, and says so
        time.sleep(_POLL_SECONDS)


def _drop_invalid(connection: Connection, settings: Settings, schema: str, name: str) -> str:
    drop = statements.drop_index(schema, name)
    if connection.execute(_STILL_INVALID, {"schema": schema, "name": name}).first() is None:
        return f"the half-built index {name} is gone or valid now, so it was kept"
    try:
        connection.exec_driver_sql(statements.lock_timeout(settings.review_lock_timeout_seconds))
        connection.exec_driver_sql(drop)
    except DBAPIError:
        # Whatever blocked the build (a long transaction, usually) blocks the drop as well.
        return (
            f"the half-built index {name} is left invalid: run {drop} once the blocking transaction ends "
            "(the next dbops review-indexes --apply drops it too)"
        )
    return f"the half-built index {name} was dropped again"


def _first_line(error: Exception) -> str:
    if isinstance(error, DbopsError):
        return error.one_line()
    cause = getattr(error, "orig", None)
    return (str(cause) if cause is not None else str(error)).strip().splitlines()[0]
