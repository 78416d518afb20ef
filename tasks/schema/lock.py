"""The migration lock: one PostgreSQL session advisory lock per database, held on its own connection.

Why a *session* lock on a *separate* connection (the Alembic pitfalls in the reference notes):
- a transaction-scoped lock would be released by Alembic's ``autocommit_block()``, which
  ``CREATE INDEX CONCURRENTLY`` and ``ALTER TYPE ... ADD VALUE`` need;
- taking it on the migration connection before ``context.configure()`` would autobegin a transaction
  that Alembic then treats as external and silently never commits.

The wait is bounded by ``lock_timeout`` (advisory lock waits honour it), so a waiting run queues
fairly behind the holder and fails after the timeout naming who holds the lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from models.database_url import describe
from models.errors import MigrationLockTimeoutError
from tasks.postgres.engine import open_connection
from tasks.postgres.locks import LockHolder

LOCK_NAME = "dbops.schema-migrations"


def lock_key(name: str = LOCK_NAME) -> int:
    """A fixed signed 64-bit advisory lock key derived from *name* (stable across versions)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


MIGRATION_LOCK_KEY = lock_key()
_LOCK_NOT_AVAILABLE = "55P03"


@contextmanager
def migration_lock(engine: Engine, timeout_seconds: float) -> Iterator[None]:
    """Hold the migration lock for the duration of the block.

    The lock connection runs nothing after acquiring, so its ``query_start`` stays the moment the lock
    was taken: that is what a waiting run reports as "since".
    """
    with open_connection(engine, autocommit=True) as connection:
        connection.execute(
            text("SELECT set_config('lock_timeout', :timeout, false)"),
            {"timeout": f"{int(timeout_seconds * 1000)}ms"},
        )
        try:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            holder = find_holder(connection)
            raise MigrationLockTimeoutError(
                f"another migration of {describe(engine.url)} held the migration lock for more than "
                f"{timeout_seconds:g} s",
                detail=f"lock holder: {holder.describe()}" if holder else "the holder has just released it",
                hint="wait for that migration to finish and retry, or raise "
                "DBOPS_MIGRATION_LOCK_TIMEOUT_SECONDS; if the holder is stuck, "
                "end it with pg_terminate_backend(pid)",
            ) from None
        connection.execute(text("SELECT set_config('lock_timeout', '0', false)"))
        try:
            yield
        finally:
            if not connection.invalidated:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})


def find_holder(connection: Connection) -> LockHolder | None:
    """Who holds the migration lock in this database right now, from pg_locks and pg_stat_activity."""
    unsigned = MIGRATION_LOCK_KEY & 0xFFFF_FFFF_FFFF_FFFF
    row = connection.execute(
        text(
            """
            SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'),
                   a.query_start
            FROM pg_locks AS l
            JOIN pg_stat_activity AS a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = CAST(:high AS oid) AND l.objid = CAST(:low AS oid) AND l.objsubid = 1
            """
        ),
        {"high": unsigned >> 32, "low": unsigned & 0xFFFF_FFFF},
    ).first()
    if row is None:
        return None
    return LockHolder(pid=row[0], application_name=row[1], client=row[2], holding_since=row[3])
