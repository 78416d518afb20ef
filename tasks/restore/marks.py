"""The databases dbops made on a server, found by the marks in their comments, and the writing of
those marks."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from models.errors import RestoreError
from models.marks import DatabaseMark, parse_mark
from tasks.restore.properties import comment_statement
from tasks.restore.runs import alive_runs

_MARKED = text("""
    SELECT d.datname, d.oid::bigint, d.datallowconn, shobj_description(d.oid, 'pg_database'),
           CASE WHEN has_database_privilege(d.oid, 'CONNECT') THEN pg_database_size(d.oid) END AS bytes,
           (SELECT count(*) FROM pg_stat_activity AS a
            WHERE a.datid = d.oid AND a.backend_type IN ('client backend', 'walsender')) AS sessions
    FROM pg_database AS d
    WHERE shobj_description(d.oid, 'pg_database') LIKE 'dbops: %'
    ORDER BY d.datname
""")
_OID = text("SELECT oid::bigint FROM pg_database WHERE datname = :name")


@dataclass(frozen=True)
class MarkedDatabase:
    name: str
    oid: int
    open: bool
    mark: DatabaseMark
    bytes: int
    sessions: int
    alive: bool  # the run that made it still holds its lock
    interrupted: bool  # it carries the intent of a sequence whose run is gone: recovery's to finish


def marked_databases(connection: Connection) -> list[MarkedDatabase]:
    """Every database on the server that carries a dbops mark, with its size, connected sessions and
    whether its run is alive.

    Sessions are client sessions and walsenders only: an autovacuum worker tidying a freshly restored
    copy is not someone using it, and DROP DATABASE ends such a worker by itself.
    """
    rows = []
    for name, oid, allowed, comment, size, sessions in connection.execute(_MARKED):
        mark = parse_mark(comment)
        if mark is not None:
            rows.append((str(name), int(oid), bool(allowed), mark, int(size or 0), int(sessions)))
    runs = {row[3].run for row in rows} | {row[3].journal.run for row in rows if row[3].journal}
    alive = alive_runs(connection, runs)
    return [
        MarkedDatabase(
            *row,
            alive=row[3].run in alive,
            interrupted=row[3].journal is not None and row[3].journal.run not in alive,
        )
        for row in rows
    ]


def write_mark(connection: Connection, name: str, oid: int, mark: DatabaseMark | None) -> None:
    """Set *name*'s comment to *mark* (None: no comment), if *name* is still the database *oid*.

    ``COMMENT ON DATABASE`` on a missing database is only a warning, so a mark written blindly could
    vanish without a word and leave an error message pointing at a database that is not there.
    """
    found = connection.execute(_OID, {"name": name}).scalar()
    if found is None or int(found) != oid:
        raise RestoreError(
            f"database {name} is gone or was replaced (OID {found}, not {oid}), so its mark was not written",
            hint="run dbops status to see which databases dbops made on this server",
        )
    connection.exec_driver_sql(comment_statement(name, mark.render() if mark else None))
