"""Table-lock waits of a migration: who blocked it, and when to try a revision again.

Each revision's DDL runs under a short ``lock_timeout`` (``DBOPS_DDL_LOCK_TIMEOUT_SECONDS``), so an
``ALTER TABLE`` stuck behind a long transaction gives up instead of queueing the application's
queries behind itself. The revision is then tried again after a jittered, growing pause, when the
blocker may be gone. Once the waiter has given up the server no longer knows who blocked it, so a
watcher on a connection of its own asks ``pg_blocking_pids`` while the wait lasts.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from tasks.postgres.engine import open_connection
from tasks.postgres.locks import LOCK_NOT_AVAILABLE, BlockingSession, blocking_sessions

#: The first pause before a retry; each later one doubles, up to the cap.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
#: How often the watcher looks at the migration's backend while it runs.
WATCH_INTERVAL_SECONDS = 0.1


def backoff_seconds(attempt: int, rng: random.Random | None = None) -> float:
    """The pause before retry *attempt* (1, 2, ...): exponential, capped, with the upper half jittered,
    so two deploys retrying the same revision do not collide again in step."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** (attempt - 1))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def longest_total_backoff(retries: int) -> float:
    """The most all *retries* pauses can add up to: what bounds a run's wait besides the timeouts."""
    return sum(min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** (n - 1)) for n in range(1, retries + 1))


def is_lock_timeout(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE


def backend_pid(connection: Connection) -> int:
    """The server pid of *connection*, read from libpq without running a statement on it (Alembic
    needs the migration connection untouched before it configures its context)."""
    pid: int = connection.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
    return pid


class BlockerWatch:
    """The sessions last seen blocking one backend, kept from a thread that polls pg_locks."""

    def __init__(self) -> None:
        self.seen: list[BlockingSession] = []
        self.stopped = threading.Event()


@contextmanager
def watching_blockers(engine: Engine, waiting_pid: int) -> Iterator[BlockerWatch]:
    """Watch *waiting_pid* for the block; ``seen`` holds whoever blocked it most recently.

    The watcher is housekeeping: if it cannot connect or a query fails, the migration goes on and
    only the report of who blocked it is lost.
    """
    watch = BlockerWatch()

    def poll() -> None:
        try:
            with open_connection(engine, autocommit=True) as connection:
                while not watch.stopped.wait(WATCH_INTERVAL_SECONDS):
                    blockers = blocking_sessions(connection, waiting_pid)
                    if blockers:
                        watch.seen = blockers
        except Exception:
            return

    thread = threading.Thread(target=poll, name=f"lock watch {waiting_pid}", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        watch.stopped.set()
        thread.join(timeout=5)


def describe_blockers(blockers: list[BlockingSession]) -> str:
    if not blockers:
        return "the blocking session had gone before it could be seen"
    return "; ".join(f"blocked by {blocker.describe()}" for blocker in blockers)
