"""What a table restore reads of the live database before it touches anything: the chosen tables'
columns, primary keys and foreign keys, whether the schema name is free, and which tables the
operator's ``--where`` applies to.

The live tables are those of the session's ``current_schema()``, as everywhere else in dbops.

``--where`` is operator-supplied SQL that reaches dbops's credentials from a Prefect form. Every
statement carrying it is sent as one prepared statement (psycopg's ``prepare=True``: a protocol-level
Parse, which PostgreSQL refuses for more than one statement), so ``1=1); DROP TABLE x; SELECT (1``
cannot run a second statement; and it runs in a READ ONLY transaction with a statement timeout, so
whatever functions it calls cannot write to a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from tasks.restore.tables.plan import UNDEFINED_COLUMN, refuse_where

Connection = psycopg.Connection[tuple[Any, ...]]

_COLUMNS = """
    SELECT c.relname, a.attname, a.attgenerated <> ''
    FROM pg_class AS c
    JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
      AND c.relname = ANY(%s)
    ORDER BY c.relname, a.attnum
"""
_PRIMARY_KEYS = """
    SELECT c.relname, array_agg(a.attname::text ORDER BY k.position)
    FROM pg_constraint AS p
    JOIN pg_class AS c ON c.oid = p.conrelid
    CROSS JOIN LATERAL unnest(p.conkey) WITH ORDINALITY AS k(attnum, position)
    JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = k.attnum
    WHERE p.contype = 'p' AND c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(%s)
    GROUP BY c.relname
"""
_FOREIGN_KEYS = """
    SELECT c.relname, r.relname, p.conname
    FROM pg_constraint AS p
    JOIN pg_class AS c ON c.oid = p.conrelid
    JOIN pg_class AS r ON r.oid = p.confrelid
    WHERE p.contype = 'f' AND c.relnamespace = current_schema()::regnamespace
      AND r.relnamespace = current_schema()::regnamespace
    ORDER BY c.relname, p.conname
"""


@dataclass(frozen=True)
class LiveTable:
    name: str
    columns: tuple[str, ...]
    generated: frozenset[str]
    key: tuple[str, ...]


@dataclass(frozen=True)
class ForeignKey:
    table: str
    references: str
    constraint: str


@dataclass(frozen=True)
class LiveCatalog:
    schema: str
    tables: dict[str, LiveTable]
    foreign_keys: tuple[ForeignKey, ...]

    def qualified(self, table: str) -> sql.Composed:
        return sql.SQL(".").join([sql.Identifier(self.schema), sql.Identifier(table)])

    def foreign_key(self, constraint: str, table: str | None) -> ForeignKey | None:
        for key in self.foreign_keys:
            if key.constraint == constraint and table in (None, key.table):
                return key
        return None


def read_catalog(connection: Connection, tables: Sequence[str]) -> LiveCatalog:
    names = list(tables)
    schema_row = connection.execute("SELECT current_schema()").fetchone()
    schema = str(schema_row[0]) if schema_row and schema_row[0] else "public"
    columns: dict[str, list[str]] = {}
    generated: dict[str, set[str]] = {}
    for table, column, is_generated in connection.execute(_COLUMNS, [names]):
        columns.setdefault(table, []).append(column)
        if is_generated:
            generated.setdefault(table, set()).add(column)
    keys = {str(table): tuple(key) for table, key in connection.execute(_PRIMARY_KEYS, [names])}
    found = {
        table: LiveTable(
            name=table,
            columns=tuple(columns[table]),
            generated=frozenset(generated.get(table, ())),
            key=keys.get(table, ()),
        )
        for table in columns
    }
    foreign = tuple(
        ForeignKey(table=str(child), references=str(parent), constraint=str(name))
        for child, parent, name in connection.execute(_FOREIGN_KEYS)
    )
    return LiveCatalog(schema=schema, tables=found, foreign_keys=foreign)


def schema_exists(connection: Connection, name: str) -> bool:
    row = connection.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", [name]
    ).fetchone()
    return bool(row and row[0])


def where_statement(head: sql.Composable, where: str) -> sql.Composed:
    """*head* (a statement ending in ``FROM relation AS alias``) filtered by *where*.

    The filter always sits last, in its own parentheses and on lines of its own, so a trailing
    ``--`` comment cannot swallow the closing parenthesis. Its text is never parsed for
    placeholders: psycopg leaves a query without parameters as it is.
    """
    return sql.Composed([head, sql.SQL(" WHERE (\n"), sql.SQL(where), sql.SQL("\n)")])


def unfiltered_tables(
    connection: Connection,
    catalog: LiveCatalog,
    tables: Sequence[str],
    where: str,
    *,
    statement_timeout_ms: int,
) -> dict[str, str]:
    """The tables *where* cannot apply to (they lack a column it uses), each with PostgreSQL's reason.

    ``EXPLAIN`` plans the filter against each live table without running it. An undefined column
    means "not this table"; any other error (a syntax error, a second statement, an unknown function,
    a value of the wrong type) refuses the restore, in PostgreSQL's words.
    """
    unfiltered: dict[str, str] = {}
    for table in tables:
        head = sql.SQL("EXPLAIN SELECT 1 FROM {} AS {}").format(
            catalog.qualified(table), sql.Identifier(table)
        )
        try:
            with connection.transaction():
                read_only(connection, statement_timeout_ms)
                connection.execute(where_statement(head, where), prepare=True)
        except psycopg.Error as error:
            if error.sqlstate == UNDEFINED_COLUMN:
                unfiltered[table] = error.diag.message_primary or str(error)
                continue
            raise refuse_where(error.diag.message_primary or str(error)) from None
    return unfiltered


def read_only(connection: Connection, statement_timeout_ms: int) -> None:
    """Make the transaction just begun READ ONLY (its first statement) and bound its statements."""
    connection.execute("SET TRANSACTION READ ONLY")
    connection.execute("SELECT set_config('statement_timeout', %s, true)", [str(statement_timeout_ms)])
