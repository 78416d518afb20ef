"""The slowest statements from ``pg_stat_statements``, or how to turn it on where it is off.

The extension needs both a server setting (it must be preloaded, which takes a restart) and a
``CREATE EXTENSION`` in the database; the report says which of the two is missing.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from models.index_review import Finding, FindingKind, SlowQueryStatistics
from models.settings import Settings
from tasks.index_review import statements

MAX_SLOW_QUERIES = 20
_QUERY_TEXT_LIMIT = 500

STATUS = text("""
    SELECT 'pg_stat_statements' = ANY (
               string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')
           ) AS preloaded,
           (SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace
            WHERE e.extname = 'pg_stat_statements') AS schema
""")

ENABLE = (
    "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements' (keeping any libraries already "
    "listed), restart PostgreSQL, then CREATE EXTENSION pg_stat_statements in this database"
)


def read_slow_queries(
    connection: Connection, settings: Settings
) -> tuple[SlowQueryStatistics, list[Finding]]:
    status = connection.execute(STATUS).one()
    if not status.preloaded:
        return SlowQueryStatistics(
            available=False,
            detail=f"pg_stat_statements is not loaded by the server; to enable it: {ENABLE}",
        ), []
    if status.schema is None:
        return SlowQueryStatistics(
            available=False,
            detail="pg_stat_statements is loaded but not installed in this database; "
            "to enable it: CREATE EXTENSION pg_stat_statements",
        ), []
    view = f"{statements.quote(status.schema)}.pg_stat_statements"
    rows = connection.execute(
        text(f"""
            SELECT s.queryid, s.query, s.calls, s.mean_exec_time, s.total_exec_time, s.rows
            FROM {view} AS s
            WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND s.calls >= :min_calls AND s.mean_exec_time >= :min_mean
            ORDER BY s.total_exec_time DESC
            LIMIT {MAX_SLOW_QUERIES}
        """),
        {
            "min_calls": settings.review_slow_query_min_calls,
            "min_mean": settings.review_slow_query_min_mean_ms,
        },
    ).mappings()
    # Another role's statements show a NULL queryid and no text to a role without pg_read_all_stats:
    # counted, never made into findings that would share one id and say nothing.
    visible, hidden = [], 0
    for row in rows:
        if row["queryid"] is None:
            hidden += 1
        else:
            visible.append(row)
    findings = [
        Finding.about(
            FindingKind.SLOW_QUERY,
            row["queryid"],
            evidence={
                "query": " ".join(str(row["query"]).split())[:_QUERY_TEXT_LIMIT],
                "calls": row["calls"],
                "mean_ms": round(row["mean_exec_time"], 2),
                "total_ms": round(row["total_exec_time"], 1),
                "rows": row["rows"],
            },
            recommendation=f"{row['calls']:,} calls at {row['mean_exec_time']:.1f} ms each: run it under "
            "EXPLAIN (ANALYZE, BUFFERS) with real parameters and index the columns it filters or sorts on",
        )
        for row in visible
    ]
    criteria = (
        f"calls >= {settings.review_slow_query_min_calls} "
        f"and mean >= {settings.review_slow_query_min_mean_ms:g} ms"
    )
    detail = f"{len(findings)} statement(s) with {criteria}, from {view}"
    if hidden:
        detail += (
            f"; {hidden} more of other roles are hidden from this role: "
            "GRANT pg_read_all_stats (or pg_monitor) to it to see them"
        )
    return SlowQueryStatistics(available=True, detail=detail), findings
