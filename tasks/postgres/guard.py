"""One guard for every front door: jobs that must not overlap on a database exclude each other in
PostgreSQL itself.

The Prefect maintenance slot queues flows across workers, but a ``dbops restore`` typed in a shell
never asks Prefect. So backup, restore, rollback, rehearsal, archive-logs and ``review-indexes
--apply`` each also hold a session advisory lock for their whole run, whichever door they came in by.

The lock lives on the server's maintenance database (``postgres``), keyed by the target database's
name: a restore renames and drops its target, and a lock held inside that database would go with
it. A session lock dies with its connection, so a killed job never leaves it behind. A second job
waits up to ``DBOPS_MAINTENANCE_WAIT_TIMEOUT_SECONDS``, then fails with one line naming the holder.

A lock that dies with its session also dies when the session is ended from outside: a provider's
``idle_session_timeout``, a connection reaper, ``pg_terminate_backend``. The guard's session turns
the timeout off for itself and keeps TCP keepalives, and a job checks :meth:`Guard.verify` before
each step that changes a live database, so it stops before the step rather than run beside another
job. Losing the guard after the work is done is only a warning.

Taking the guard is also where a job first meets its database, so it is where an interrupted
restore sequence of a run that is gone gets finished or undone (:mod:`tasks.restore.journal`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import SQLAlchemyError

from models.errors import GuardLostError, MaintenanceBusyError
from models.settings import Settings
from tasks.postgres.engine import make_engine, open_connection
from tasks.postgres.locks import (
    LockHolder,
    advisory_holder,
    holds_advisory_lock,
    lock_key,
    wait_for_advisory_lock,
)

MAINTENANCE_DATABASE = "postgres"
#: The guard's session must outlive any idle stretch of the job it guards.
LONG_LIVED_SESSION = {"idle_session_timeout": "0"}
_log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


def guard_key(database: str) -> int:
    """The lock key of jobs on *database*: stable across releases, so mixed versions exclude each other."""
    return lock_key(f"dbops.maintenance:{database}")


class Guard:
    """The held guard of one database, as the job it protects sees it."""

    def __init__(self, connection: Connection, database: str, job: str) -> None:
        self._connection, self.database, self.job = connection, database, job

    def verify(self, step: str) -> None:
        """Raise :class:`GuardLostError` unless this job still holds the guard, before *step*."""
        try:
            held = holds_advisory_lock(self._connection, guard_key(self.database))
        except SQLAlchemyError:  # the session is gone, or broken: either way the lock is not ours
            held = False
        if not held:
            raise GuardLostError(
                f"{self.job} of {self.database} lost its guard before the step '{step}', and stopped there",
                detail="the session holding it was ended (idle_session_timeout, a connection reaper "
                "or pg_terminate_backend), so another dbops job may be running on the database",
                hint="run dbops status to see the database's state, then run the job again",
            )


@contextmanager
def maintenance_guard(
    server: URL,
    settings: Settings,
    database: str,
    job: str,
    logger: Logger | None = None,
    *,
    recover: bool = True,
) -> Iterator[Guard]:
    """Hold the guard of *database* on *server* while the block runs *job*.

    With *recover*, an interrupted restore sequence on *database* whose run is gone is finished or
    undone first, so the job meets the database open and whole.
    """
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

    maintenance = server.set(database=MAINTENANCE_DATABASE)
    engine = make_engine(maintenance, settings, purpose=job, server_settings=LONG_LIVED_SESSION)
    try:
        with open_connection(engine, autocommit=True) as connection:
            if not _try_lock(connection, key):
                holder = advisory_holder(connection, key)
                log.warning(
                    "%s: waiting up to %g s for another dbops job on %s (%s)",
                    job,
                    timeout,
                    database,
                    holder.describe() if holder else "it has just finished",
                )
                wait_for_advisory_lock(connection, key, timeout, timed_out)
            guard = Guard(connection, database, job)
            try:
                if recover:
                    # Imported here: the journal takes guards of its own (tasks.restore imports this module).
                    from tasks.restore.recovery import recover_interrupted

                    recover_interrupted(maintenance, settings, guard, log)
                yield guard
            finally:
                _release(connection, key, database, job, log)
    finally:
        engine.dispose()


@contextmanager
def try_guard(server: URL, settings: Settings, database: str, job: str) -> Iterator[Guard | None]:
    """The guard of *database* if no other job holds it right now, else None: for housekeeping
    (the sweep, ``dbops status``) that would rather skip a database than wait for it."""
    engine = make_engine(
        server.set(database=MAINTENANCE_DATABASE), settings, purpose=job, server_settings=LONG_LIVED_SESSION
    )
    try:
        with open_connection(engine, autocommit=True) as connection:
            key = guard_key(database)
            if not _try_lock(connection, key):
                yield None
                return
            try:
                yield Guard(connection, database, job)
            finally:
                _release(connection, key, database, job, _log)
    finally:
        engine.dispose()


def _try_lock(connection: Connection, key: int) -> bool:
    return bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())


def _release(connection: Connection, key: int, database: str, job: str, log: Logger) -> None:
    """Unlock; a guard already gone with its session is reported, never a failure of the job."""
    try:
        released = connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key}).scalar()
    except SQLAlchemyError as error:
        first = str(error).splitlines()[0]
        log.warning(
            "%s of %s: the guard's session had ended by the end of the job (%s)", job, database, first
        )
        return
    if not released:
        log.warning("%s of %s: the guard was no longer held at the end of the job", job, database)
