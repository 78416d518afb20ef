"""Findings about the schema's shape: foreign keys with no index to look them up, and indexes the
models declare but the database lacks (or the other way round)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sqlalchemy import PrimaryKeyConstraint, UniqueConstraint

from models.index_review import Finding, FindingKind
from models.schema import MIGRATION_BOOKKEEPING_TABLES, Base
from models.settings import Settings
from tasks.index_review import statements
from tasks.index_review.catalog import ForeignKeyInfo, IndexInfo, TableInfo
from tasks.index_review.index_findings import supports

#: The migrations' bookkeeping tables are not part of the models.
_UNMODELLED_TABLES = frozenset({"alembic_version"}) | MIGRATION_BOOKKEEPING_TABLES
_MAX_IDENTIFIER = 63


@dataclass(frozen=True)
class DeclaredIndex:
    """An index the models ask for: a plain index, or the one behind a unique or primary key."""

    name: str
    table: str
    columns: tuple[str, ...]
    sql: tuple[str, ...]
    undo_sql: tuple[str, ...]


def declared_indexes(schema: str, settings: Settings) -> dict[str, DeclaredIndex]:
    """Every index the models declare, with the concurrent build that would create it.

    A unique or primary key is built as a unique index first and then attached to the constraint
    (``USING INDEX``), so the table is only locked for the instant of the attach.
    """
    declared: dict[str, DeclaredIndex] = {}
    for table in Base.metadata.sorted_tables:
        qualified = f"{statements.quote(schema)}.{statements.quote(table.name)}"
        for index in table.indexes:
            name = str(index.name)
            declared[name] = DeclaredIndex(
                name=name,
                table=table.name,
                columns=tuple(str(getattr(part, "name", part)) for part in index.expressions),
                sql=tuple(statements.bounded(settings, statements.create_model_index(index))),
                undo_sql=tuple(statements.bounded(settings, statements.drop_index(schema, name))),
            )
        for constraint in table.constraints:
            if not isinstance(constraint, (UniqueConstraint, PrimaryKeyConstraint)):
                continue
            name = str(constraint.name)
            columns = tuple(column.name for column in constraint.columns)
            kind = "PRIMARY KEY" if isinstance(constraint, PrimaryKeyConstraint) else "UNIQUE"
            declared[name] = DeclaredIndex(
                name=name,
                table=table.name,
                columns=columns,
                sql=tuple(
                    statements.bounded(
                        settings,
                        statements.create_index(schema, table.name, name, list(columns), unique=True),
                        f"ALTER TABLE {qualified} ADD CONSTRAINT {statements.quote(name)} {kind} "
                        f"USING INDEX {statements.quote(name)}",
                    )
                ),
                undo_sql=tuple(
                    statements.bounded(
                        settings, f"ALTER TABLE {qualified} DROP CONSTRAINT {statements.quote(name)}"
                    )
                ),
            )
    return declared


def foreign_key_findings(
    foreign_keys: list[ForeignKeyInfo],
    indexes: list[IndexInfo],
    tables: dict[str, TableInfo],
    settings: Settings,
) -> list[Finding]:
    """Foreign keys whose columns lead no index: each delete or key change on the parent then scans
    the whole child table to find (and cascade to, or refuse for) the referencing rows."""
    findings = []
    for key in foreign_keys:
        if any(supports(index, key) for index in indexes):
            continue
        schema = tables[key.table].schema if key.table in tables else "public"
        name = f"ix_{key.table}_{'_'.join(key.column_names)}"[:_MAX_IDENTIFIER]
        columns = ", ".join(key.column_names)
        findings.append(
            Finding.about(
                FindingKind.FOREIGN_KEY_WITHOUT_INDEX,
                key.name,
                table=key.table,
                index=name,
                evidence={
                    "constraint": key.name,
                    "columns": list(key.column_names),
                    "referenced_table": key.referenced_table,
                    "rows": _rows(tables, key.table),
                    "referenced_rows": _rows(tables, key.referenced_table),
                },
                recommendation=f"index {key.table} ({columns}): every delete or key change in "
                f"{key.referenced_table} scans {key.table} to enforce {key.name}",
                sql=statements.bounded(
                    settings, statements.create_index(schema, key.table, name, list(key.column_names))
                ),
                undo_sql=statements.bounded(settings, statements.drop_index(schema, name)),
            )
        )
    return findings


def declaration_findings(
    indexes: list[IndexInfo],
    declared: dict[str, DeclaredIndex],
    foreign_keys: list[ForeignKeyInfo],
    drop_recommended_by: Mapping[str, str],
    settings: Settings,
    leftovers: Collection[str] = (),
) -> list[Finding]:
    """Model-declared indexes the database lacks, and database indexes the models do not declare.

    An undeclared index is recommended for dropping at most once: where another finding (named in
    *drop_recommended_by*, index name to finding id) already does, this one only points at it. One that
    serves a foreign key or a constraint is to be declared, not dropped. The *leftovers* of
    unfinished builds are no candidates for a declaration.
    """
    present = {(index.table, index.name) for index in indexes}
    findings = [
        Finding.about(
            FindingKind.MISSING_INDEX,
            wanted.name,
            table=wanted.table,
            index=wanted.name,
            evidence={"columns": list(wanted.columns), "declared_in": "models/schema.py"},
            recommendation=f"create {wanted.name} on {wanted.table} ({', '.join(wanted.columns)}): "
            "the models declare it and queries written against them expect it",
            sql=list(wanted.sql),
            undo_sql=list(wanted.undo_sql),
        )
        for wanted in declared.values()
        if (wanted.table, wanted.name) not in present
    ]
    for index in indexes:
        if index.name in declared or index.name in leftovers or index.table in _UNMODELLED_TABLES:
            continue
        serves_key = [key.name for key in foreign_keys if supports(index, key)]
        sql: list[str] = []
        undo: list[str] = []
        if index.name in drop_recommended_by:
            advice = (
                "declare it in models/schema.py with a migration, "
                f"or drop it as {drop_recommended_by[index.name]} recommends"
            )
        elif index.constraint_name is not None or serves_key:
            advice = "declare it in models/schema.py with a migration, so the next migration keeps it"
        else:
            advice = "declare it in models/schema.py with a migration if queries need it, or drop it"
            sql = statements.bounded(settings, statements.drop_index(index.schema, index.name))
            undo = statements.bounded(settings, statements.concurrently(index.definition))
        findings.append(
            Finding.about(
                FindingKind.UNDECLARED_INDEX,
                index.name,
                table=index.table,
                index=index.name,
                evidence={
                    "definition": index.definition,
                    "scans": index.scans,
                    "size_bytes": index.size_bytes,
                    "constraint": index.constraint_name,
                    "serves_foreign_keys": serves_key,
                },
                recommendation=f"{index.name} is not in the models: {advice}",
                sql=sql,
                undo_sql=undo,
            )
        )
    return findings


def _rows(tables: dict[str, TableInfo], name: str) -> int | None:
    table = tables.get(name)
    return max(table.live_rows, table.estimated_rows) if table else None
