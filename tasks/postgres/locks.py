"""Who holds a lock, and session advisory locks that name their holder when a waiter gives up.

The facts an operator needs to decide whether to wait or to end a session: pid, application name,
client and since when.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError


@dataclass(frozen=True)
class LockHolder:
    pid: int
    application_name: str
    client: str
    holding_since: datetime | None

    def describe(self) -> str:
        since = self.holding_since.isoformat(timespec="seconds") if self.holding_since else "unknown"
        return (
            f"pid {self.pid}, application_name '{self.application_name}', client {self.client}, since {since}"
        )


# Another role's session shows this role no state, client or times without pg_read_all_stats: say
# so, rather than call it a local connection.
_CLIENT = (
    "CASE WHEN a.state IS NULL THEN 'hidden from this role (GRANT pg_read_all_stats to see it)' "
    "ELSE coalesce(host(a.client_addr), 'local') END"
)
_EXCLUSIVE_HOLDERS = text(f"""
    SELECT DISTINCT a.pid, coalesce(a.application_name, ''), {_CLIENT},
           a.query_start
    FROM pg_locks AS l
    JOIN pg_stat_activity AS a ON a.pid = l.pid
    WHERE l.locktype = 'relation' AND l.granted AND l.mode = 'AccessExclusiveLock'
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.relation = to_regclass(:table)
      AND a.pid <> pg_backend_pid()
    ORDER BY a.query_start, a.pid
""")


def exclusive_holders(connection: Connection, table: str) -> list[LockHolder]:
    """The sessions holding *table* in ACCESS EXCLUSIVE mode, which blocks even reading it.

    ``query_start`` stands for "since": a session that took the lock and went idle in its transaction
    (a stuck migration, a forgotten psql) shows when its last statement began.
    """
    rows = connection.execute(_EXCLUSIVE_HOLDERS, {"table": table})
    return [
        LockHolder(pid=row[0], application_name=row[1], client=row[2], holding_since=row[3]) for row in rows
    ]


@dataclass(frozen=True)
class BlockingSession:
    """A session that kept a waiting one from its lock, and what it holds on what."""

    holder: LockHolder
    mode: str
    relation: str

    def describe(self) -> str:
        return f"{self.holder.describe()}, holding {self.mode} on {self.relation}"


_BLOCKERS = text("""
    SELECT b.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'),
           a.xact_start, coalesce(held.mode, 'a place ahead in the queue for ' || w.mode),
           coalesce(w.relation::regclass::text, w.locktype)
    FROM pg_locks AS w
    CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS b(pid)
    LEFT JOIN pg_stat_activity AS a ON a.pid = b.pid
    LEFT JOIN LATERAL (
        SELECT string_agg(h.mode, '+' ORDER BY h.mode) AS mode FROM pg_locks AS h
        WHERE h.pid = b.pid AND h.granted AND h.locktype = w.locktype
          AND h.database IS NOT DISTINCT FROM w.database AND h.relation IS NOT DISTINCT FROM w.relation
    ) AS held ON true
    WHERE w.pid = :pid AND NOT w.granted
    ORDER BY a.xact_start, b.pid
""")


def blocking_sessions(connection: Connection, waiting_pid: int) -> list[BlockingSession]:
    """The sessions *waiting_pid* is waiting behind right now, from pg_blocking_pids and pg_locks.

    Asked while the wait lasts: once the waiter gives up, nothing on the server remembers who
    blocked it. ``xact_start`` stands for "since": a lock is held from its transaction's start at
    the latest; it is null when the role may not see the other session's details.
    """
    rows = connection.execute(_BLOCKERS, {"pid": waiting_pid})
    return [
        BlockingSession(
            holder=LockHolder(pid=row[0], application_name=row[1], client=row[2], holding_since=row[3]),
            mode=row[4],
            relation=row[5],
        )
        for row in rows
    ]


def lock_key(name: str) -> int:
    """A fixed signed 64-bit advisory lock key derived from *name* (stable across versions)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


#: SQLSTATE lock_not_available: a lock wait ran into lock_timeout.
LOCK_NOT_AVAILABLE = "55P03"
_ADVISORY_HOLDER = text(f"""
    SELECT a.pid, coalesce(a.application_name, ''), {_CLIENT}, a.query_start
    FROM pg_locks AS l
    JOIN pg_stat_activity AS a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = CAST(:high AS oid) AND l.objid = CAST(:low AS oid) AND l.objsubid = 1
""")


def advisory_holder(connection: Connection, key: int) -> LockHolder | None:
    """Who holds the session advisory lock *key* in this database right now."""
    high, low = _halves(key)
    row = connection.execute(_ADVISORY_HOLDER, {"high": high, "low": low}).first()
    if row is None:
        return None
    return LockHolder(pid=row[0], application_name=row[1], client=row[2], holding_since=row[3])


def wait_for_advisory_lock(
    connection: Connection,
    key: int,
    timeout_seconds: float,
    on_timeout: Callable[[LockHolder | None], Exception],
) -> None:
    """Take the session advisory lock *key* on the autocommit *connection*, waiting at most
    *timeout_seconds*.

    The wait is bounded by ``lock_timeout`` (advisory lock waits honour it), so waiters queue fairly
    behind the holder; after *timeout_seconds* the error *on_timeout* makes from the holder is raised.
    """
    connection.execute(
        text("SELECT set_config('lock_timeout', :timeout, false)"),
        {"timeout": f"{max(1, int(timeout_seconds * 1000))}ms"},
    )
    try:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
    except OperationalError as error:
        if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        raise on_timeout(advisory_holder(connection, key)) from None
    connection.execute(text("SELECT set_config('lock_timeout', '0', false)"))


@contextmanager
def session_advisory_lock(
    connection: Connection,
    key: int,
    timeout_seconds: float,
    on_timeout: Callable[[LockHolder | None], Exception],
) -> Iterator[None]:
    """Hold the session advisory lock *key* on the autocommit *connection* for the block
    (:func:`wait_for_advisory_lock` says how the wait is bounded).

    The connection runs nothing while it holds the lock, so its ``query_start`` stays the moment the lock
    was taken: that is what a waiting run reports as "since".
    """
    wait_for_advisory_lock(connection, key, timeout_seconds, on_timeout)
    try:
        yield
    finally:
        if not connection.invalidated:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


_HELD = text("""
    SELECT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
          AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid) AND objsubid = 1)
""")
_HOLDERS_ANYWHERE = text("""
    SELECT classid::bigint, objid::bigint FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
""")


def _halves(key: int) -> tuple[int, int]:
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def holds_advisory_lock(connection: Connection, key: int) -> bool:
    """Whether this connection's own session still holds the session advisory lock *key*."""
    high, low = _halves(key)
    return bool(connection.execute(_HELD, {"high": high, "low": low}).scalar())


def held_advisory_keys(connection: Connection) -> set[int]:
    """The keys of every session advisory lock held on the server right now (pg_locks shows every
    session's locks to every role, unlike pg_stat_activity)."""
    held = set()
    for high, low in connection.execute(_HOLDERS_ANYWHERE):
        unsigned = (int(high) << 32) | int(low)
        held.add(unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned)
    return held
