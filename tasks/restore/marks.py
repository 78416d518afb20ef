"""The databases dbops made on a server, found by the marks in their comments."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from models.marks import DatabaseMark, parse_mark

_MARKED = text("""
    SELECT d.datname, shobj_description(d.oid, 'pg_database'),
           CASE WHEN has_database_privilege(d.oid, 'CONNECT') THEN pg_database_size(d.oid) END AS bytes,
           (SELECT count(*) FROM pg_stat_activity AS a
            WHERE a.datid = d.oid AND a.backend_type = 'client backend') AS sessions
    FROM pg_database AS d
    WHERE shobj_description(d.oid, 'pg_database') LIKE 'dbops: %'
    ORDER BY d.datname
""")


@dataclass(frozen=True)
class MarkedDatabase:
    name: str
    mark: DatabaseMark
    bytes: int
    sessions: int


def marked_databases(connection: Connection) -> list[MarkedDatabase]:
    """Every database on the server that carries a dbops mark, with its size and connected sessions.

    Sessions are client sessions only: an autovacuum worker tidying a freshly restored copy is not
    someone using it, and DROP DATABASE ends such a worker by itself.
    """
    found = []
    for name, comment, size, sessions in connection.execute(_MARKED):
        mark = parse_mark(comment)
        if mark is not None:
            found.append(MarkedDatabase(str(name), mark, int(size or 0), int(sessions)))
    return found
