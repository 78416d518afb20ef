"""What the review reads from PostgreSQL: indexes, tables and foreign keys of the current schema, with
their usage statistics, each in one catalogue query.

The rest of the review is plain functions over these rows, so its rules are tested without a server
and every finding can show the numbers it rests on. Columns some supported majors lack are picked by
``server_version_num`` (see :mod:`tasks.index_review.server_versions`), and read as NULL where absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import TextClause, text
from sqlalchemy.engine import Connection

from tasks.index_review.server_versions import last_index_scan_column, last_sequential_scan_column
from tasks.postgres.progress import index_build_seen

# {last_scan} is filled in by indexes_query: the column exists from PostgreSQL 16 on. {building} is
# tasks.postgres.progress's test: a build counts only when seen running in this database.
_INDEXES = """
    SELECT x.indexrelid::bigint AS oid, n.nspname AS schema, t.relname AS table, i.relname AS name,
           am.amname AS method, x.indisunique AS is_unique, x.indisprimary AS is_primary,
           x.indisvalid AS is_valid, x.indisready AS is_ready,
           {building} AS building,
           c.conname AS constraint_name, x.indnkeyatts AS key_count,
           x.indkey::int2[] AS attnums, x.indclass::oid[] AS opclasses,
           x.indcollation::oid[] AS collations, x.indoption::int2[] AS options,
           array(
               SELECT coalesce(a.attname::text, '(expression)')
               FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
               LEFT JOIN pg_attribute AS a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
               ORDER BY k.position
           ) AS column_names,
           coalesce(pg_get_expr(x.indexprs, x.indrelid), '') AS expressions,
           coalesce(pg_get_expr(x.indpred, x.indrelid), '') AS predicate,
           pg_get_indexdef(x.indexrelid) AS definition,
           pg_relation_size(x.indexrelid) AS size_bytes,
           coalesce(s.idx_scan, 0) AS scans, {last_scan} AS last_scan
    FROM pg_index AS x
    JOIN pg_class AS i ON i.oid = x.indexrelid
    JOIN pg_class AS t ON t.oid = x.indrelid
    JOIN pg_namespace AS n ON n.oid = t.relnamespace
    JOIN pg_am AS am ON am.oid = i.relam
    LEFT JOIN pg_constraint AS c
           ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x')
    LEFT JOIN pg_stat_all_indexes AS s ON s.indexrelid = x.indexrelid
    WHERE n.nspname = current_schema() AND t.relkind IN ('r', 'p', 'm')
    ORDER BY t.relname, i.relname
"""

# {last_sequential_scan} is filled in by tables_query: the column exists from PostgreSQL 16 on.
_TABLES = """
    SELECT c.oid::bigint AS oid, n.nspname AS schema, c.relname AS name,
           greatest(c.reltuples, 0)::bigint AS estimated_rows, pg_table_size(c.oid) AS size_bytes,
           coalesce(s.n_live_tup, 0) AS live_rows, coalesce(s.n_dead_tup, 0) AS dead_rows,
           coalesce(s.n_mod_since_analyze, 0) AS modified_since_analyze,
           coalesce(s.seq_scan, 0) AS sequential_scans, coalesce(s.seq_tup_read, 0) AS sequential_rows_read,
           coalesce(s.idx_scan, 0) AS index_scans,
           greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
           greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze,
           s.last_autoanalyze, {last_sequential_scan} AS last_sequential_scan
    FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_all_tables AS s ON s.relid = c.oid
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')
    ORDER BY c.relname
"""

FOREIGN_KEYS = text("""
    SELECT c.conname AS name, t.relname AS table, r.relname AS referenced_table,
           c.conkey::int2[] AS attnums,
           array(
               SELECT a.attname::text
               FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, position)
               JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
               ORDER BY k.position
           ) AS column_names
    FROM pg_constraint AS c
    JOIN pg_class AS t ON t.oid = c.conrelid
    JOIN pg_class AS r ON r.oid = c.confrelid
    WHERE c.contype = 'f' AND c.conparentid = 0 AND t.relnamespace = current_schema()::regnamespace
    ORDER BY t.relname, c.conname
""")

# A database whose counters were never reset has counted since it was created or the cluster started,
# whichever is later; the server's start is the best bound the catalogue offers.
STATISTICS_SINCE = text("""
    SELECT coalesce(d.stats_reset, pg_postmaster_start_time()) AS since, now() AS now
    FROM pg_stat_database AS d
    WHERE d.datname = current_database()
""")


class KeyColumn(NamedTuple):
    """One key column as the planner sees it: two indexes match only where all four agree."""

    attnum: int  # 0 for an expression
    opclass: int
    collation: int
    option: int  # DESC / NULLS FIRST bits


@dataclass(frozen=True)
class IndexInfo:
    oid: int
    schema: str
    table: str
    name: str
    method: str
    is_unique: bool
    is_primary: bool
    is_valid: bool
    is_ready: bool
    building: bool
    constraint_name: str | None
    key_columns: tuple[KeyColumn, ...]
    include_attnums: frozenset[int]
    column_names: tuple[str, ...]
    expressions: str
    predicate: str
    definition: str
    size_bytes: int
    scans: int
    last_scan: datetime | None  # always None before PostgreSQL 16

    @property
    def enforces_something(self) -> bool:
        """Unique, primary key or constraint-backing: dropping it changes what the database allows."""
        return self.is_unique or self.is_primary or self.constraint_name is not None

    @property
    def key_attnums(self) -> tuple[int, ...]:
        return tuple(column.attnum for column in self.key_columns)


@dataclass(frozen=True)
class TableInfo:
    oid: int
    schema: str
    name: str
    estimated_rows: int
    size_bytes: int
    live_rows: int
    dead_rows: int
    modified_since_analyze: int
    sequential_scans: int
    sequential_rows_read: int
    index_scans: int
    last_vacuum: datetime | None
    last_analyze: datetime | None
    last_autoanalyze: datetime | None
    last_sequential_scan: datetime | None  # always None before PostgreSQL 16


@dataclass(frozen=True)
class ForeignKeyInfo:
    name: str
    table: str
    referenced_table: str
    attnums: tuple[int, ...]
    column_names: tuple[str, ...]


def indexes_query(server_version_num: int) -> TextClause:
    return text(
        _INDEXES.format(
            last_scan=last_index_scan_column(server_version_num), building=index_build_seen("x.indexrelid")
        )
    )


def tables_query(server_version_num: int) -> TextClause:
    return text(_TABLES.format(last_sequential_scan=last_sequential_scan_column(server_version_num)))


def read_server_version_num(connection: Connection) -> int:
    """The server's own version number (``150014``), which decides the catalogue columns to read."""
    return int(connection.execute(text("SHOW server_version_num")).scalar_one())


def read_indexes(connection: Connection, server_version_num: int) -> list[IndexInfo]:
    indexes = []
    for row in connection.execute(indexes_query(server_version_num)).mappings():
        key_count = row["key_count"]
        attnums = list(row["attnums"])
        key_columns = tuple(
            KeyColumn(
                attnums[position],
                row["opclasses"][position],
                row["collations"][position],
                row["options"][position],
            )
            for position in range(key_count)
        )
        indexes.append(
            IndexInfo(
                oid=row["oid"],
                schema=row["schema"],
                table=row["table"],
                name=row["name"],
                method=row["method"],
                is_unique=row["is_unique"],
                is_primary=row["is_primary"],
                is_valid=row["is_valid"],
                is_ready=row["is_ready"],
                building=row["building"],
                constraint_name=row["constraint_name"],
                key_columns=key_columns,
                include_attnums=frozenset(attnums[key_count:]),
                column_names=tuple(row["column_names"][:key_count]),
                expressions=row["expressions"],
                predicate=row["predicate"],
                definition=row["definition"],
                size_bytes=row["size_bytes"],
                scans=row["scans"],
                last_scan=row["last_scan"],
            )
        )
    return indexes


def read_tables(connection: Connection, server_version_num: int) -> list[TableInfo]:
    return [TableInfo(**row) for row in connection.execute(tables_query(server_version_num)).mappings()]


def read_foreign_keys(connection: Connection) -> list[ForeignKeyInfo]:
    return [
        ForeignKeyInfo(
            name=row["name"],
            table=row["table"],
            referenced_table=row["referenced_table"],
            attnums=tuple(row["attnums"]),
            column_names=tuple(row["column_names"]),
        )
        for row in connection.execute(FOREIGN_KEYS).mappings()
    ]


def read_statistics_since(connection: Connection) -> tuple[datetime | None, datetime]:
    row = connection.execute(STATISTICS_SINCE).one()
    return row.since, row.now
