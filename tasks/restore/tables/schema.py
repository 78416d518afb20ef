"""The inspection schema: the verified rows, filtered, made visible in one transaction, and what a
merge of them would do.

The filter runs on the session's temporary tables in a READ ONLY transaction, as one prepared
statement whose only output is the row identifiers (``ctid``) of the rows to keep. Whatever the
operator's text does inside its parentheses, it can only choose among the restored rows: it cannot
write to a table, run a second statement, or add rows of its own. The schema and its tables are then
created from the kept rows in a single transaction, so the schema either exists complete or not at
all. Each table gets the live table's primary key, which lets a person query it and a merge match it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from models.errors import RestoreRefusedError
from models.table_restore import RestoredTable
from tasks.restore.tables.catalog import Connection, LiveCatalog, read_only, where_statement
from tasks.restore.tables.plan import refuse_where
from tasks.restore.tables.stream import StagedTable

_DUPLICATE_SCHEMA = "42P06"


@dataclass(frozen=True)
class SchemaTable:
    """A table of the inspection schema, as a merge sees it."""

    table: str
    columns: tuple[str, ...]  # the backup's columns the live table computes no value for
    key: tuple[str, ...]  # the live table's primary key; empty if the backup lacks a key column


def filter_staged(
    connection: Connection,
    staged: Mapping[str, StagedTable],
    where: str,
    filtered: Sequence[str],
    *,
    statement_timeout_ms: int,
) -> dict[str, sql.Composable]:
    """For each of *filtered*, the condition that keeps exactly the staged rows *where* accepts."""
    kept: dict[str, sql.Composable] = {}
    for index, table in enumerate(filtered, start=1):
        rows = staged[table]
        tids = sql.Identifier(f"kept_{index}")
        connection.execute(sql.SQL("CREATE TEMPORARY TABLE {} (tid tid)").format(tids))
        head = sql.SQL("INSERT INTO pg_temp.{} (tid) SELECT {}.ctid FROM {} AS {}").format(
            tids, sql.Identifier(table), rows.relation, sql.Identifier(table)
        )
        try:
            with connection.transaction():
                read_only(connection, statement_timeout_ms)
                connection.execute(where_statement(head, where), prepare=True)
        except psycopg.Error as error:
            raise refuse_where(error.diag.message_primary or str(error)) from None
        kept[table] = sql.SQL("WHERE ctid IN (SELECT tid FROM pg_temp.{})").format(tids)
    return kept


def publish(
    connection: Connection,
    catalog: LiveCatalog,
    staged: Mapping[str, StagedTable],
    order: Sequence[str],
    *,
    schema: str,
    kept: Mapping[str, sql.Composable],
    comment: str,
) -> dict[str, int]:
    """Create *schema* holding each staged table's kept rows, in one transaction; rows per table."""
    counts: dict[str, int] = {}
    try:
        with connection.transaction():
            connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            connection.execute(
                sql.SQL("COMMENT ON SCHEMA {} IS {}").format(sql.Identifier(schema), sql.Literal(comment))
            )
            for table in order:
                rows = staged[table]
                target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
                created = connection.execute(
                    sql.SQL("CREATE TABLE {} AS SELECT * FROM {} {}").format(
                        target, rows.relation, kept.get(table, sql.SQL(""))
                    )
                )
                counts[table] = max(created.rowcount, 0)
                key = catalog.tables[table].key
                if key and set(key) <= set(rows.columns):
                    connection.execute(
                        sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                            target, sql.SQL(", ").join(map(sql.Identifier, key))
                        )
                    )
    except psycopg.Error as error:
        if error.sqlstate == _DUPLICATE_SCHEMA:
            raise schema_taken(schema) from None
        raise
    return counts


def schema_taken(schema: str) -> RestoreRefusedError:
    return RestoreRefusedError(
        f"schema {schema} already exists in the live database; nothing was done",
        hint=f"name a new schema with --into-schema, or drop the old one (DROP SCHEMA {schema} CASCADE) "
        "once nobody needs it",
    )


def schema_tables(catalog: LiveCatalog, staged: Mapping[str, StagedTable]) -> dict[str, SchemaTable]:
    result = {}
    for table, rows in staged.items():
        live = catalog.tables[table]
        key = live.key if set(live.key) <= set(rows.columns) else ()
        columns = tuple(column for column in rows.columns if column not in live.generated)
        result[table] = SchemaTable(table, columns, key)
    return result


def preview(
    connection: Connection, catalog: LiveCatalog, schema: str, table: SchemaTable
) -> tuple[int, int, int]:
    """(missing, present, differing): rows of the schema's *table* the live table lacks, has, and has
    with other content, by primary key."""
    parts = merge_parts(catalog, schema, table)
    row = connection.execute(
        sql.SQL(
            "SELECT count(*) FILTER (WHERE l.{first} IS NULL), "
            "count(*) FILTER (WHERE l.{first} IS NOT NULL), "
            "count(*) FILTER (WHERE l.{first} IS NOT NULL AND {differs}) "
            "FROM {restored} AS s LEFT JOIN {live} AS l ON {match}"
        ).format(first=sql.Identifier(table.key[0]), **parts)
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def merge_parts(catalog: LiveCatalog, schema: str, table: SchemaTable) -> dict[str, sql.Composable]:
    """The pieces of SQL the preview and the merge share: the two relations, the key match and the
    content comparison.

    Content is compared as the text of the row's values: every type has a text form, while some
    (``json``, ``xml``) have no equality operator, and two values that print alike are, for an
    operator inspecting them, the same content.
    """

    def row_of(alias: str) -> sql.Composable:
        return sql.SQL("ROW({})::text").format(
            sql.SQL(", ").join(sql.Identifier(alias, column) for column in table.columns)
        )

    return {
        "restored": sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table.table)),
        "live": catalog.qualified(table.table),
        "match": sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(sql.Identifier("l", column), sql.Identifier("s", column))
            for column in table.key
        ),
        "differs": sql.SQL("{} IS DISTINCT FROM {}").format(row_of("l"), row_of("s")),
    }


def describe_tables(
    order: Sequence[str],
    backup_counts: Mapping[str, int],
    counts: Mapping[str, int],
    unfiltered: Mapping[str, str],
    filtering: bool,
) -> list[RestoredTable]:
    return [
        RestoredTable(
            table=table,
            backup_rows=backup_counts.get(table, 0),
            rows=counts[table],
            filtered=filtering and table not in unfiltered,
            unfiltered_because=unfiltered.get(table),
        )
        for table in order
    ]
