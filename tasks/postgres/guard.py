"""One guard for every front door: jobs that must not overlap on a database exclude each other in
PostgreSQL itself.

The Prefect maintenance slot queues flows across workers, but a ``dbops restore`` typed in a shell
never asks Prefect. So backup, restore, rollback, rehearsal, archive-logs and ``review-indexes
--apply`` each also hold a session advisory lock for their whole run, whichever door they came in by.

The lock lives on the server's maintenance database (``postgres``), keyed by the target database's
name: a restore renames and drops its target, and a lock held inside that database would go with
it. A session lock dies with its connection, so a killed job never leaves it behind. A second job
waits up to ``DBOPS_MAINTENANCE_WAIT_TIMEOUT_SECONDS``, then fails with one line naming the holder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import URL

from models.errors import MaintenanceBusyError
from models.settings import Settings
from tasks.postgres.engine import make_engine, open_connection
from tasks.postgres.locks import LockHolder, advisory_holder, lock_key, session_advisory_lock

MAINTENANCE_DATABASE = "postgres"
_log = logging.getLogger(__name__)


def guard_key(database: str) -> int:
    """The lock key of jobs on *database*: stable across releases, so mixed versions exclude each other."""
    return lock_key(f"dbops.maintenance:{database}")


@contextmanager
def maintenance_guard(
    server: URL,
    settings: Settings,
    database: str,
    job: str,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> Iterator[None]:
    """Hold the guard of *database* on *server* while the block runs *job*."""
    log = logger or _log
    key = guard_key(database)
    timeout = settings.maintenance_wait_timeout_seconds
    where = f"{server.host or 'local socket'}:{server.port or 5432}"

    def timed_out(holder: LockHolder | None) -> MaintenanceBusyError:
        return MaintenanceBusyError(
            f"{job} of {database} waited {timeout:g} s for another dbops job on {database} ({where}) "
            "to finish",
            detail=f"holder: {holder.describe()}" if holder else "the holder has just finished",
            hint="wait for that job and retry, or raise DBOPS_MAINTENANCE_WAIT_TIMEOUT_SECONDS; "
            "if the holder is stuck, end it with pg_terminate_backend(pid)",
        )

    engine = make_engine(server.set(database=MAINTENANCE_DATABASE), settings, purpose=job)
    try:
        with open_connection(engine, autocommit=True) as connection:
            if connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
                try:
                    yield
                finally:
                    if not connection.invalidated:
                        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                return
            holder = advisory_holder(connection, key)
            log.warning(
                "%s: waiting up to %g s for another dbops job on %s (%s)",
                job,
                timeout,
                database,
                holder.describe() if holder else "it has just finished",
            )
            with session_advisory_lock(connection, key, timeout, timed_out):
                yield
    finally:
        engine.dispose()
