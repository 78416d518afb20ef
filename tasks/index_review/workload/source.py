"""The workload: the statements the application runs most, from ``pg_stat_statements``, and those of
a ``--queries`` file.

``pg_stat_statements`` does not record ``application_name``, so dbops's own statements are told by what
they read: the catalogue and dbops's bookkeeping tables (see :func:`.sql_text.advisable`). Only
top-level statements count (a function's inner statements are planned with the function), and one
statement run by several roles is one statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection

from models.errors import QueriesFileError
from models.settings import Settings
from models.workload import StatementSource, WorkloadStatement
from tasks.index_review import statements
from tasks.index_review.slow_queries import STATUS
from tasks.index_review.workload.sql_text import advisable, split_statements, updated_columns

#: Rows read per statement wanted: most of the top statements by time may be the catalogue's or
#: utility statements, which are dropped after reading.
_OVERREAD = 4
_HIDDEN_TEXT = "<insufficient privilege>"
_UPDATES = re.compile(r"\bUPDATE\b", re.IGNORECASE)
_ROW_LOCKS = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+)?UPDATE\b", re.IGNORECASE)

PRIVILEGE_HINT = (
    "the text of other roles' statements is hidden from this role: GRANT pg_read_all_stats "
    "(or pg_monitor) to it so the workload advice sees the whole workload"
)


@dataclass(frozen=True)
class StatisticsWorkload:
    statements: list[WorkloadStatement]
    hidden: int  # statements of other roles whose text this role may not read
    window_seconds: float | None  # since pg_stat_statements was reset
    schema: str | None  # None: pg_stat_statements cannot be read here


def read_statistics_workload(connection: Connection, settings: Settings) -> StatisticsWorkload:
    """The top statements by total time with at least ``review_workload_min_calls`` calls; empty when
    ``pg_stat_statements`` is not loaded or installed (the slow-query section says how to enable it)."""
    status = connection.execute(STATUS).one()
    if not status.preloaded or status.schema is None:
        return StatisticsWorkload([], 0, None, None)
    schema = statements.quote(status.schema)
    rows = connection.execute(
        text(f"""
            SELECT s.queryid, min(s.query) AS query, sum(s.calls)::bigint AS calls,
                   sum(s.total_exec_time) AS total_ms
            FROM {schema}.pg_stat_statements AS s
            WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND s.toplevel
            GROUP BY s.queryid
            HAVING sum(s.calls) >= :min_calls
            ORDER BY sum(s.total_exec_time) DESC
            LIMIT :rows
        """),
        {
            "min_calls": settings.review_workload_min_calls,
            "rows": settings.review_workload_statements * _OVERREAD,
        },
    ).mappings()
    found: list[WorkloadStatement] = []
    hidden = 0
    for row in rows:
        if row["queryid"] is None or row["query"] is None or row["query"] == _HIDDEN_TEXT:
            hidden += 1
        elif advisable(row["query"]) and len(found) < settings.review_workload_statements:
            calls = int(row["calls"])
            found.append(
                WorkloadStatement(
                    key=f"q:{row['queryid']}",
                    query=str(row["query"]),
                    calls=calls,
                    total_ms=round(float(row["total_ms"]), 3),
                    mean_ms=round(float(row["total_ms"]) / calls, 3) if calls else 0.0,
                )
            )
    window = connection.execute(
        text(f"SELECT extract(epoch FROM now() - stats_reset)::float FROM {schema}.pg_stat_statements_info")
    ).scalar()
    return StatisticsWorkload(found, hidden, float(window) if window is not None else None, status.schema)


def read_updated_columns(connection: Connection, schema: str) -> dict[str, frozenset[str] | None]:
    """The columns each table's updates assign, from every ``UPDATE`` (and upsert) pg_stat_statements
    holds for this database, by table; None for a table whose updates cannot all be read. None for
    every table when some statements' text is hidden from this role: which tables they update is
    unknown. Tables missing from the result had no update recorded (or evicted) and count as unknown
    too (see :mod:`.overhead`)."""
    rows = connection.execute(
        text(f"""
            SELECT s.query
            FROM {statements.quote(schema)}.pg_stat_statements AS s
            WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND (s.query IS NULL OR s.query ~* 'update' OR s.query = :hidden)
        """),
        {"hidden": _HIDDEN_TEXT},
    ).scalars()
    found: dict[str, frozenset[str] | None] = {}
    for query in rows:
        if query is None or query == _HIDDEN_TEXT:
            return {}
        update = updated_columns(query)
        if update is None:
            if _UPDATES.search(_ROW_LOCKS.sub("", query)):
                return {}  # an update this reading misses (in a WITH, say): which table is unknown
            continue
        table, columns = update
        known = found.get(table, frozenset())
        found[table] = None if columns is None or known is None else known | columns
    return found


def read_queries_file(path: Path) -> list[WorkloadStatement]:
    """The statements of a ``--queries`` file, each called once unless a ``-- calls: N`` comment before
    it says otherwise. Statements an index cannot serve (DDL, SET, plain inserts) are left out."""
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise QueriesFileError(
            f"cannot read the queries file {path}",
            detail=str(getattr(error, "strerror", None) or error),
            hint="pass a readable UTF-8 file of SQL statements separated by semicolons",
        ) from None
    found = [
        WorkloadStatement(
            key=f"f:{statement.line}",
            query=statement.query,
            calls=statement.calls,
            source=StatementSource.FILE,
        )
        for statement in split_statements(content)
        if advisable(statement.query)
    ]
    if not found:
        raise QueriesFileError(
            f"the queries file {path} holds no statement an index could serve",
            hint="list SELECT, UPDATE or DELETE statements that filter, join or sort, each ending with ';'",
        )
    return found


def read_workload(
    connection: Connection, settings: Settings, *, queries_file: Path | None = None
) -> list[WorkloadStatement]:
    """The workload: ``pg_stat_statements``'s top statements, then the file's."""
    from_file = read_queries_file(queries_file) if queries_file is not None else []
    return [*read_statistics_workload(connection, settings).statements, *from_file]
