"""The migration lock: one PostgreSQL session advisory lock per database, held on its own connection.

Why a *session* lock on a *separate* connection (the Alembic pitfalls in the reference notes):
- a transaction-scoped lock would be released by Alembic's ``autocommit_block()``, which
  ``CREATE INDEX CONCURRENTLY`` and ``ALTER TYPE ... ADD VALUE`` need;
- taking it on the migration connection before ``context.configure()`` would autobegin a transaction
  that Alembic then treats as external and silently never commits.

The wait is bounded (see :func:`tasks.postgres.locks.session_advisory_lock`), so a waiting run
queues fairly behind the holder and fails after the timeout naming who holds the lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine

from models.database_url import describe
from models.errors import MigrationLockTimeoutError
from tasks.postgres.engine import open_connection
from tasks.postgres.locks import LockHolder, advisory_holder, lock_key, session_advisory_lock

LOCK_NAME = "dbops.schema-migrations"
MIGRATION_LOCK_KEY = lock_key(LOCK_NAME)


@contextmanager
def migration_lock(engine: Engine, timeout_seconds: float) -> Iterator[None]:
    """Hold the migration lock for the duration of the block."""
    with (
        open_connection(engine, autocommit=True) as connection,
        migration_lock_on(connection, timeout_seconds),
    ):
        yield


@contextmanager
def migration_lock_on(connection: Connection, timeout_seconds: float) -> Iterator[None]:
    """Hold the migration lock on *connection*, an autocommit connection the caller also works on.

    ``review-indexes --apply`` builds on the session that holds the lock: while a build's backend
    lives, even one whose client was killed, no migration or second build can start beside it.
    """

    def timed_out(holder: LockHolder | None) -> MigrationLockTimeoutError:
        return MigrationLockTimeoutError(
            f"another migration of {describe(connection.engine.url)} held the migration lock for more "
            f"than {timeout_seconds:g} s",
            detail=f"lock holder: {holder.describe()}" if holder else "the holder has just released it",
            hint="wait for that migration to finish and retry, or raise "
            "DBOPS_MIGRATION_LOCK_TIMEOUT_SECONDS; if the holder is stuck, "
            "end it with pg_terminate_backend(pid)",
        )

    with session_advisory_lock(connection, MIGRATION_LOCK_KEY, timeout_seconds, timed_out):
        yield


def find_holder(connection: Connection) -> LockHolder | None:
    """Who holds the migration lock in this database right now, from pg_locks and pg_stat_activity."""
    return advisory_holder(connection, MIGRATION_LOCK_KEY)
