"""Checks on the data: uniqueness (also under normalisation), relations and orphans, row counts.

All set-based: one GROUP BY per unique key that normalisation could defeat, one anti-join per foreign
key, one count per table, and sample rows only for what failed. Each of those reads is memoised and
listed by a ``*_reads`` function, so the runner spreads them over its connections ahead of the checks,
and a caller may run any one of them (a single table's orphans, say) on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from sqlalchemy import String, Table, UniqueConstraint, exists, func, or_, select, text

from models.integrity import MAX_SAMPLES
from models.schema import TABLES
from tasks.integrity.context import CheckContext, counting_key, orphans_query
from tasks.integrity.outcome import Outcome, outcome_from, passed
from tasks.integrity.schedule import Read


def _unique_indexes(context: CheckContext) -> dict[tuple[str, tuple[str, ...]], bool]:
    """(table, columns) of every unique index in the schema, mapped to whether it is valid."""

    def read() -> dict[tuple[str, tuple[str, ...]], bool]:
        with context.connection() as connection:
            rows = connection.execute(UNIQUE_INDEXES).all()
        found: dict[tuple[str, tuple[str, ...]], bool] = {}
        for table, columns, valid in rows:
            key = (table, tuple(columns))
            found[key] = found.get(key, False) or bool(valid)
        return found

    return context.once("unique-indexes", read)


UNIQUE_INDEXES = text(
    "SELECT t.relname, array_agg(a.attname::text ORDER BY k.position), bool_and(x.indisvalid) "
    "FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid "
    "CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, position) "
    "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
    "WHERE x.indisunique AND t.relnamespace = current_schema()::regnamespace "
    "GROUP BY x.indexrelid, t.relname"
)
#: Every unique key the models declare, in catalogue order.
DECLARED_UNIQUE_KEYS = [
    (table, constraint)
    for table in TABLES
    for constraint in table.constraints
    if isinstance(constraint, UniqueConstraint)
]


def _columns(constraint: UniqueConstraint) -> tuple[str, ...]:
    return tuple(column.name for column in constraint.columns)


def _enforced(context: CheckContext, table: Table, constraint: UniqueConstraint) -> bool:
    return _unique_indexes(context).get((table.name, _columns(constraint)), False)


def duplicates(context: CheckContext, table: Table, constraint: UniqueConstraint) -> list[dict[str, Any]]:
    """Values of one unique key shared by several rows once text is trimmed and lower-cased (at most
    MAX_SAMPLES, most shared first), read once per run."""
    return context.once(
        ("duplicates", table.name, _columns(constraint)), lambda: _duplicates(context, table, constraint)
    )


def _duplicates(context: CheckContext, table: Table, constraint: UniqueConstraint) -> list[dict[str, Any]]:
    normalised = [
        func.lower(func.btrim(column)) if isinstance(column.type, String) else column
        for column in constraint.columns
    ]
    if _enforced(context, table, constraint) and not _any_unnormalised(
        context, constraint.columns, normalised
    ):
        # Every value is already in normal form, so a collision after normalising would be an
        # exact duplicate, which the valid unique index rules out: no GROUP BY over the table.
        return []
    labels = [
        expression.label(name) for expression, name in zip(normalised, _columns(constraint), strict=True)
    ]
    query = (
        select(*labels, func.count().label("rows"))
        .group_by(*normalised)
        .having(func.count() > 1)
        .order_by(func.count().desc())
        .limit(MAX_SAMPLES)
    )
    with context.connection() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def uniqueness(context: CheckContext) -> Outcome:
    """Declared unique keys are enforced, and no two rows collide once text is trimmed and lower-cased."""
    problems: list[str] = []
    samples: list[dict[str, Any]] = []
    for table, constraint in DECLARED_UNIQUE_KEYS:
        columns = _columns(constraint)
        if not _enforced(context, table, constraint):
            problems.append(
                f"unique key {table.name} ({', '.join(columns)}) is not enforced: no valid unique index"
            )
        shared = duplicates(context, table, constraint)
        if shared:
            first = ", ".join(str(shared[0][name]) for name in columns)
            more = "+" if len(shared) == MAX_SAMPLES else ""
            problems.append(
                f"{table.name} ({', '.join(columns)}) has {len(shared)}{more} value(s) shared by "
                f"several rows once trimmed and lower-cased, e.g. '{first}'"
            )
            samples.extend({"table": table.name, **duplicate} for duplicate in shared)
    return outcome_from(
        problems,
        f"{len(DECLARED_UNIQUE_KEYS)} unique keys enforced, no duplicates under normalisation",
        samples,
    )


def _any_unnormalised(context: CheckContext, columns: Any, normalised: list[Any]) -> bool:
    pairs = [(column, form) for column, form in zip(columns, normalised, strict=True) if form is not column]
    if not pairs:
        return False
    query = select(exists().where(or_(*(column.is_distinct_from(form) for column, form in pairs))))
    with context.connection() as connection:
        return bool(connection.execute(query).scalar_one())


def uniqueness_reads(context: CheckContext, sizes: Mapping[str, int]) -> list[Read]:
    """The uniqueness check's reads: one pass over a table per unique key."""
    return [
        Read("uniqueness", sizes.get(table.name, 0), partial(duplicates, context, table, constraint))
        for table, constraint in DECLARED_UNIQUE_KEYS
    ]


def relations_reads(context: CheckContext, sizes: Mapping[str, int]) -> list[Read]:
    """The relations check's reads: an anti-join of child and parent per foreign key."""
    return [
        Read(
            "relations",
            sizes.get(table.name, 0) + sizes.get(key.referred_table.name, 0),
            partial(context.orphan_count, key),
        )
        for table in TABLES
        for key in table.foreign_key_constraints
    ]


def row_count_reads(context: CheckContext, sizes: Mapping[str, int]) -> list[Read]:
    """The row counts' reads: a count per table without a foreign key, mostly from its smallest
    index (about a quarter). A table with one is counted by that key's orphan scan."""
    return [
        Read("row counts", sizes.get(table.name, 0) // 4, partial(context.row_count, table))
        for table in TABLES
        if counting_key(table) is None
    ]


def relations(context: CheckContext) -> Outcome:
    """Every declared foreign key exists and is validated, and no row points at a missing parent."""
    with context.connection() as connection:
        constraints = {
            (row[0], tuple(row[1]), row[2]): (row[3], bool(row[4]))
            for row in connection.execute(
                text(
                    "SELECT t.relname, array_agg(a.attname::text ORDER BY k.position), p.relname, c.conname, "
                    "bool_and(c.convalidated) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
                    "JOIN pg_class p ON p.oid = c.confrelid "
                    "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, position) "
                    "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
                    "WHERE c.contype = 'f' AND t.relnamespace = current_schema()::regnamespace "
                    "GROUP BY c.oid, t.relname, p.relname, c.conname"
                )
            )
        }
    problems: list[str] = []
    samples: list[dict[str, Any]] = []
    keys = [(table, key) for table in TABLES for key in table.foreign_key_constraints]
    for table, key in keys:
        columns = tuple(element.parent.name for element in key.elements)
        found = constraints.get((table.name, columns, key.referred_table.name))
        described = f"{table.name} ({', '.join(columns)}) -> {key.referred_table.name}"
        if found is None:
            problems.append(f"foreign key {described} is missing")
        elif not found[1]:
            problems.append(
                f"foreign key {found[0]} ({described}) is NOT VALID: existing rows were never checked"
            )
        orphans = context.orphan_count(key)
        if orphans:
            problems.append(f"{orphans} row(s) of {described} point at no {key.referred_table.name} row")
            samples.extend(_orphan_samples(context, table, key, columns))
    return outcome_from(problems, f"{len(keys)} foreign keys present and validated, no orphan rows", samples)


def _orphan_samples(
    context: CheckContext, table: Table, key: Any, columns: tuple[str, ...]
) -> list[dict[str, Any]]:
    primary_key = [
        table.c[column.name].label(f"{table.name}.{column.name}") for column in table.primary_key.columns
    ]
    query = (
        orphans_query(key)
        .with_only_columns(*primary_key, *(table.c[name] for name in columns))
        .limit(MAX_SAMPLES)
    )
    with context.connection() as connection:
        return [
            {"constraint": str(key.name), **{name: str(value) for name, value in row.items()}}
            for row in connection.execute(query).mappings()
        ]


def row_counts(context: CheckContext) -> Outcome:
    counts = {table.name: context.row_count(table) for table in TABLES}
    total = sum(counts.values())
    return passed(
        f"{total:,} rows in {len(counts)} tables: "
        + ", ".join(f"{name} {rows:,}" for name, rows in counts.items())
    )
