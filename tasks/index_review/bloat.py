"""Estimated bloat of btree indexes and tables, from ``pg_stats`` alone (no extension needed).

The estimate is the usual one (as in PgHero and the ioguix queries): from the row count and the
average width of each column, how many pages the relation would need if freshly built, against how
many it has. It is an estimate: columns without statistics make it impossible (those relations are
skipped until analysed), and btree deduplication can make an index smaller than estimated (which
reads as no bloat, never as false bloat).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from models.index_review import Finding, FindingKind
from models.settings import Settings
from tasks.index_review import statements

MAXALIGN = 8
PAGE_HEADER = 24
BTREE_SPECIAL = 16
ITEM_POINTER = 4
INDEX_TUPLE_HEADER = 8
HEAP_TUPLE_HEADER = 23

INDEX_SHAPES = text("""
    WITH key_columns AS (
        SELECT x.indexrelid,
               -- an expression column's statistics are kept under the index's own name
               CASE WHEN k.attnum = 0 THEN i.relname ELSE t.relname END AS stats_table,
               CASE WHEN k.attnum = 0 THEN ia.attname ELSE ta.attname END AS stats_column
        FROM pg_index AS x
        JOIN pg_class AS i ON i.oid = x.indexrelid
        JOIN pg_class AS t ON t.oid = x.indrelid
        CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
        LEFT JOIN pg_attribute AS ta ON ta.attrelid = t.oid AND ta.attnum = k.attnum
        LEFT JOIN pg_attribute AS ia ON ia.attrelid = i.oid AND ia.attnum = k.position
        WHERE t.relnamespace = current_schema()::regnamespace
          AND i.relam = (SELECT oid FROM pg_am WHERE amname = 'btree')
          AND i.relpages > 0 AND x.indisvalid
    ), widths AS (
        SELECT c.indexrelid,
               sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS data_width,
               bool_or(coalesce(s.null_frac, 0) > 0) AS has_nulls,
               bool_and(s.attname IS NOT NULL) AS analysed
        FROM key_columns AS c
        LEFT JOIN pg_stats AS s
               ON s.schemaname = current_schema() AND s.tablename = c.stats_table
              AND s.attname = c.stats_column AND NOT s.inherited
        GROUP BY c.indexrelid
    )
    SELECT n.nspname AS schema, t.relname AS table, i.relname AS name,
           i.relpages::bigint AS pages, greatest(i.reltuples, 0)::float AS tuples,
           w.data_width::float AS data_width, w.has_nulls, w.analysed, 0 AS columns,
           coalesce(substring(array_to_string(i.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::int, 90)
               AS fillfactor
    FROM widths AS w
    JOIN pg_class AS i ON i.oid = w.indexrelid
    JOIN pg_index AS x ON x.indexrelid = i.oid
    JOIN pg_class AS t ON t.oid = x.indrelid
    JOIN pg_namespace AS n ON n.oid = t.relnamespace
    ORDER BY t.relname, i.relname
""")

TABLE_SHAPES = text("""
    SELECT n.nspname AS schema, c.relname AS table, NULL AS name,
           c.relpages::bigint AS pages, greatest(c.reltuples, 0)::float AS tuples,
           coalesce(w.data_width, 0)::float AS data_width, coalesce(w.has_nulls, false) AS has_nulls,
           coalesce(w.analysed_columns, 0) = a.columns AS analysed, a.columns,
           coalesce(substring(array_to_string(c.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::int, 100)
               AS fillfactor
    FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL (
        SELECT count(*) AS columns FROM pg_attribute
        WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped
    ) AS a
    LEFT JOIN LATERAL (
        SELECT sum((1 - s.null_frac) * s.avg_width) AS data_width, bool_or(s.null_frac > 0) AS has_nulls,
               count(*) AS analysed_columns
        FROM pg_stats AS s
        WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND NOT s.inherited
    ) AS w ON true
    WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relpages > 0
    ORDER BY c.relname
""")


@dataclass(frozen=True)
class RelationShape:
    """What the estimate needs of one index or table: its size, rows and average row width."""

    schema: str
    table: str
    name: str | None  # the index; None for the table itself
    pages: int
    tuples: float
    data_width: float
    has_nulls: bool
    analysed: bool
    columns: int
    fillfactor: int


def _align(size: float) -> float:
    return math.ceil(size / MAXALIGN) * MAXALIGN


def expected_index_pages(shape: RelationShape, block_size: int) -> int:
    """Leaf pages a fresh build at the index's fill factor would need, plus the metapage."""
    header = INDEX_TUPLE_HEADER + (4 if shape.has_nulls else 0)
    entry = _align(header) + _align(shape.data_width) + ITEM_POINTER
    per_page = max(math.floor((block_size - PAGE_HEADER - BTREE_SPECIAL) * shape.fillfactor / 100 / entry), 1)
    return 1 + math.ceil(shape.tuples / per_page)


def expected_table_pages(shape: RelationShape, block_size: int) -> int:
    null_bitmap = math.ceil(shape.columns / 8) if shape.has_nulls else 0
    entry = _align(HEAP_TUPLE_HEADER + null_bitmap) + _align(shape.data_width) + ITEM_POINTER
    per_page = max(math.floor((block_size - PAGE_HEADER) * shape.fillfactor / 100 / entry), 1)
    return math.ceil(shape.tuples / per_page)


def read_shapes(connection: Connection) -> tuple[int, list[RelationShape], list[RelationShape]]:
    block_size = int(connection.execute(text("SELECT current_setting('block_size')::int")).scalar_one())
    indexes = [RelationShape(**row) for row in connection.execute(INDEX_SHAPES).mappings()]
    tables = [RelationShape(**row) for row in connection.execute(TABLE_SHAPES).mappings()]
    return block_size, indexes, tables


def bloat_findings(
    block_size: int, indexes: list[RelationShape], tables: list[RelationShape], settings: Settings
) -> list[Finding]:
    findings = []
    for shape in [*indexes, *tables]:
        if not shape.analysed:
            continue
        is_index = shape.name is not None
        expected = (
            expected_index_pages(shape, block_size) if is_index else expected_table_pages(shape, block_size)
        )
        bloat_bytes = max(shape.pages - expected, 0) * block_size
        real_bytes = shape.pages * block_size
        bloat_percent = 100.0 * bloat_bytes / real_bytes
        if (
            bloat_percent < settings.review_bloat_min_percent
            or bloat_bytes < settings.review_bloat_min_mb * 2**20
        ):
            continue
        evidence = {
            "real_bytes": real_bytes,
            "expected_bytes": expected * block_size,
            "bloat_bytes": bloat_bytes,
            "bloat_percent": round(bloat_percent, 1),
            "rows": int(shape.tuples),
            "fillfactor": shape.fillfactor,
        }
        wasted = f"~{bloat_bytes / 2**20:.1f} MiB ({bloat_percent:.0f}%)"
        if is_index:
            assert shape.name is not None
            findings.append(
                Finding.about(
                    FindingKind.INDEX_BLOAT,
                    shape.name,
                    table=shape.table,
                    index=shape.name,
                    evidence=evidence,
                    recommendation=f"rebuild {shape.name}: an estimated {wasted} of it is empty space",
                    sql=statements.bounded(settings, statements.reindex(shape.schema, shape.name)),
                )
            )
        else:
            qualified = f"{statements.quote(shape.schema)}.{statements.quote(shape.table)}"
            findings.append(
                Finding.about(
                    FindingKind.TABLE_BLOAT,
                    shape.table,
                    table=shape.table,
                    evidence=evidence,
                    recommendation=f"compact {shape.table}: an estimated {wasted} of it is empty space. "
                    "VACUUM FULL locks the table for the whole rewrite, so run it in a maintenance window "
                    "(or use pg_repack online)",
                    sql=statements.bounded(settings, f"VACUUM (FULL, ANALYZE) {qualified}"),
                    online=False,
                )
            )
    return findings
