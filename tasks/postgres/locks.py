"""Who holds a lock: the facts an operator needs to decide whether to wait or to end a session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection


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


_EXCLUSIVE_HOLDERS = text("""
    SELECT DISTINCT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'),
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
