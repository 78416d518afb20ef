"""What the advice reads about the tables: the planner's column statistics (to order equality columns
and weigh an index's width) and the write counters (to price an index's upkeep)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from tasks.index_review.workload.candidates import ColumnStatistics, TableStatistics
from tasks.index_review.workload.overhead import TableWrites

COLUMN_STATISTICS = text("""
    SELECT n.nspname AS schema, c.relname AS table, greatest(c.reltuples, 0)::float AS rows,
           s.attname AS column, s.n_distinct::float AS n_distinct, s.avg_width,
           s.null_frac::float AS null_frac
    FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    LEFT JOIN pg_stats AS s ON s.schemaname = n.nspname AND s.tablename = c.relname AND NOT s.inherited
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm', 'p')
""")

# A database whose counters were never reset has counted since the server started (as the review's
# statistics_since takes it).
TABLE_WRITES = text("""
    SELECT t.schemaname AS schema, t.relname AS table, t.n_tup_ins AS inserts, t.n_tup_upd AS updates,
           t.n_tup_hot_upd AS hot_updates,
           extract(epoch FROM now() - coalesce(d.stats_reset, pg_postmaster_start_time()))::float AS seconds
    FROM pg_stat_user_tables AS t
    CROSS JOIN pg_stat_database AS d
    WHERE d.datname = current_database() AND t.schemaname = current_schema()
""")


def read_table_statistics(connection: Connection) -> dict[tuple[str, str], TableStatistics]:
    columns: dict[tuple[str, str], dict[str, ColumnStatistics]] = {}
    rows: dict[tuple[str, str], float] = {}
    for row in connection.execute(COLUMN_STATISTICS).mappings():
        key = (str(row["schema"]), str(row["table"]))
        rows[key] = float(row["rows"])
        found = columns.setdefault(key, {})
        if row["column"] is not None:
            found[str(row["column"])] = ColumnStatistics(
                n_distinct=float(row["n_distinct"] or 0.0),
                avg_width=int(row["avg_width"] or 0),
                null_frac=float(row["null_frac"] or 0.0),
            )
    return {key: TableStatistics(rows=rows[key], columns=columns[key]) for key in rows}


def read_table_writes(connection: Connection) -> dict[tuple[str, str], TableWrites]:
    return {
        (str(row["schema"]), str(row["table"])): TableWrites(
            inserts=int(row["inserts"]),
            updates=int(row["updates"]),
            hot_updates=int(row["hot_updates"]),
            seconds=float(row["seconds"]),
        )
        for row in connection.execute(TABLE_WRITES).mappings()
    }
