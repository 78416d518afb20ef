"""Merge the inspection schema's rows into the live tables: all of it in one transaction, or nothing.

Tables go parents first (``plan.merge_order``), so a restored child finds its restored parent.
Rows are matched by primary key: a missing one is inserted (``ON CONFLICT (key) DO NOTHING``, so a
row the application inserts meanwhile wins), a present one is left alone, and with ``replace`` a
present one whose content differs is updated from the backup. Any other constraint is left to
PostgreSQL: a child whose parent is in neither the live table nor the restored rows breaks its foreign
key, and the whole merge rolls back with one line naming the constraint and the table to add.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import errors, sql

from models.errors import TableMergeError
from models.table_restore import MergeCounts
from tasks.restore.copy import Logger
from tasks.restore.tables.catalog import Connection, LiveCatalog
from tasks.restore.tables.schema import SchemaTable, merge_parts


def merge_schema(
    connection: Connection,
    catalog: LiveCatalog,
    schema: str,
    tables: Sequence[SchemaTable],
    *,
    replace: bool,
    lock_timeout_ms: int,
    statement_timeout_ms: int,
    log: Logger,
) -> dict[str, MergeCounts]:
    """Merge *tables* (in this order) from *schema* into the live tables; counts per table."""
    counts: dict[str, MergeCounts] = {}
    chosen = [table.table for table in tables]
    try:
        with connection.transaction():
            connection.execute(
                "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                [str(lock_timeout_ms), str(statement_timeout_ms)],
            )
            for table in tables:
                counts[table.table] = _merge_table(connection, catalog, schema, table, replace)
                log.info(
                    "merged %s: %d inserted, %d already present, %d replaced",
                    table.table,
                    counts[table.table].inserted,
                    counts[table.table].already_present,
                    counts[table.table].replaced,
                )
    except psycopg.Error as error:
        raise merge_failure(error, catalog, chosen, schema) from None
    return counts


def _merge_table(
    connection: Connection, catalog: LiveCatalog, schema: str, table: SchemaTable, replace: bool
) -> MergeCounts:
    parts = merge_parts(catalog, schema, table)
    columns = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    replaced = 0
    assigned = [column for column in table.columns if column not in table.key]
    if replace and assigned:
        replaced = connection.execute(
            sql.SQL(
                "UPDATE {live} AS l SET {assignments} FROM {restored} AS s WHERE {match} AND {differs}"
            ).format(
                assignments=sql.SQL(", ").join(
                    sql.SQL("{} = {}").format(sql.Identifier(column), sql.Identifier("s", column))
                    for column in assigned
                ),
                **parts,
            )
        ).rowcount
    inserted = connection.execute(
        sql.SQL(
            "INSERT INTO {live} ({columns}) OVERRIDING SYSTEM VALUE SELECT {selected} FROM {restored} AS s "
            "ON CONFLICT ({key}) DO NOTHING"
        ).format(
            live=parts["live"],
            columns=columns,
            selected=sql.SQL(", ").join(sql.Identifier("s", column) for column in table.columns),
            restored=parts["restored"],
            key=sql.SQL(", ").join(map(sql.Identifier, table.key)),
        )
    ).rowcount
    total = connection.execute(sql.SQL("SELECT count(*) FROM {}").format(parts["restored"])).fetchone()
    rows = int(total[0]) if total else 0
    return MergeCounts(inserted=inserted, already_present=rows - inserted, replaced=replaced)


def merge_failure(
    error: psycopg.Error, catalog: LiveCatalog, chosen: Sequence[str], schema: str
) -> TableMergeError:
    """The rolled-back merge as one line: the constraint it would have broken, and what to do."""
    diag = error.diag
    kept = f"nothing was merged; the restored rows stay in schema {schema}"
    detail = diag.message_detail or None
    if isinstance(error, errors.ForeignKeyViolation) and diag.constraint_name:
        key = catalog.foreign_key(diag.constraint_name, diag.table_name)
        if key is not None and key.references not in chosen:
            hint = f"add the parent table with --table {key.references}, so its missing rows are merged first"
        else:
            hint = "the referenced rows are in neither the live table nor the restored rows: widen --where"
        referenced = f" ({key.table} -> {key.references})" if key is not None else ""
        return TableMergeError(
            f"the merge would break foreign key {diag.constraint_name}{referenced}, so {kept}",
            detail=detail,
            hint=hint,
        )
    if isinstance(error, errors.UniqueViolation) and diag.constraint_name:
        return TableMergeError(
            f"the merge would break unique constraint {diag.constraint_name} of {diag.table_name}, so {kept}",
            detail=detail,
            hint="the live table holds that value under another primary key (a row made again since the "
            "backup?): delete one of the two, or leave the backup's out with --where, and run again",
        )
    if isinstance(error, errors.LockNotAvailable):
        return TableMergeError(
            f"the merge could not lock a live table in time, so {kept}",
            detail=diag.message_primary,
            hint="find the session holding it (pg_stat_activity, pg_locks) and retry, or raise "
            "DBOPS_LOCK_WAIT_TIMEOUT_SECONDS",
        )
    return TableMergeError(
        f"the merge failed, so {kept}",
        detail="; ".join(part for part in (diag.message_primary or str(error), detail) if part),
        hint="see the detail; the live tables are as they were",
    )
