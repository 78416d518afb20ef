"""Checks on the schema itself: revision, drift, enums and indexes, all read from the catalogue."""

from __future__ import annotations

import re
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Enum, text

from models.schema import Base, is_modelled
from tasks.integrity.context import CheckContext
from tasks.integrity.outcome import Outcome, outcome_from
from tasks.postgres.progress import HIDDEN_BUILDS, index_build_seen
from tasks.schema.drift import describe_difference
from tasks.schema.migrate import head_revision

ENUM_LABELS = text("""
    SELECT t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
    FROM pg_type AS t JOIN pg_enum AS e ON e.enumtypid = t.oid
    WHERE t.typnamespace = current_schema()::regnamespace
    GROUP BY t.typname
""")
COLUMN_DEFAULTS = text("""
    SELECT c.relname, a.attname, pg_get_expr(d.adbin, d.adrelid)
    FROM pg_attrdef AS d
    JOIN pg_attribute AS a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
    JOIN pg_class AS c ON c.oid = d.adrelid
    WHERE c.relnamespace = current_schema()::regnamespace
""")
INDEX_COLUMNS = text("""
    SELECT i.relname, t.relname, array_agg(a.attname::text ORDER BY k.position)
    FROM pg_index AS x
    JOIN pg_class AS i ON i.oid = x.indexrelid
    JOIN pg_class AS t ON t.oid = x.indrelid
    CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, position)
    LEFT JOIN pg_attribute AS a ON a.attrelid = t.oid AND a.attnum = k.attnum
    WHERE t.relnamespace = current_schema()::regnamespace
    GROUP BY i.relname, t.relname
""")
# Builds still running (CREATE INDEX CONCURRENTLY) are invalid by design until they finish; only a
# build this role can see running in this database is left alone (see tasks.postgres.progress).
BROKEN_INDEXES = text(f"""
    SELECT i.relname AS index, t.relname AS table, x.indisvalid AS valid, x.indisready AS ready
    FROM pg_index AS x
    JOIN pg_class AS i ON i.oid = x.indexrelid
    JOIN pg_class AS t ON t.oid = x.indrelid
    WHERE t.relnamespace = current_schema()::regnamespace
      AND NOT (x.indisvalid AND x.indisready)
      AND NOT {index_build_seen("x.indexrelid")}
    ORDER BY 1
""")

# Differences a dedicated check reports with more precision: each problem is reported once.
_OWNED_ELSEWHERE = {"add_index", "remove_index", "add_constraint", "add_fk"}
_ENUM_COLUMNS = [
    (table.name, column)
    for table in Base.metadata.tables.values()
    for column in table.columns
    if isinstance(column.type, Enum)
]


def migrations_at_head(context: CheckContext) -> Outcome:
    with context.connection() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
    head = head_revision()
    if revision == head:
        return outcome_from([], f"at head ({head})")
    problem = f"database is at revision {revision or 'none'}, the code's head is {head}: run dbops migrate"
    return outcome_from([problem], "", [{"revision": revision, "head": head}])


def schema_drift(context: CheckContext) -> Outcome:
    with context.connection() as connection:
        migration_context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "compare_server_default": True, "include_name": is_modelled},
        )
        differences = [
            describe_difference(item)
            for item in compare_metadata(migration_context, Base.metadata)
            if not _owned_elsewhere(item)
        ]
    return outcome_from(
        differences, "tables and columns match the models", [{"difference": line} for line in differences]
    )


def _owned_elsewhere(difference: Any) -> bool:
    if isinstance(difference, list):
        return all(_owned_elsewhere(change) for change in difference)
    kind = difference[0]
    if kind == "modify_default":
        return (difference[2], difference[3]) in {(table, column.name) for table, column in _ENUM_COLUMNS}
    return kind in _OWNED_ELSEWHERE


def enums(context: CheckContext) -> Outcome:
    """Enum types carry exactly the models' labels, and enum columns default to the models' value."""
    expected_labels = {column.type.name: list(column.type.enums) for _, column in _ENUM_COLUMNS}  # type: ignore[attr-defined]
    expected_defaults = {
        (table, column.name): str(getattr(column.server_default, "arg", ""))
        for table, column in _ENUM_COLUMNS
        if column.server_default is not None
    }
    with context.connection() as connection:
        labels: dict[str, list[str]] = {row[0]: list(row[1]) for row in connection.execute(ENUM_LABELS)}
        defaults: dict[tuple[str, str], str] = {
            (row[0], row[1]): row[2] for row in connection.execute(COLUMN_DEFAULTS)
        }
    problems: list[str] = []
    samples: list[dict[str, Any]] = []
    for name, wanted in expected_labels.items():
        found = labels.get(name)
        if found is None:
            problems.append(f"enum type {name} is missing")
        elif found != wanted:
            unexpected = [label for label in found if label not in wanted]
            missing = [label for label in wanted if label not in found]
            problems.append(
                f"enum {name}: unexpected labels {unexpected or 'none'}, missing {missing or 'none'}"
            )
            samples.append({"enum": name, "database": found, "models": wanted})
    for (table, column), wanted_default in expected_defaults.items():
        expression = defaults.get((table, column))
        if _default_literal(expression) != wanted_default:
            problems.append(
                f"{table}.{column} defaults to {expression or 'nothing'}, the models say '{wanted_default}'"
            )
            samples.append({"column": f"{table}.{column}", "database": expression, "models": wanted_default})
    detail = f"{len(expected_labels)} enum types and {len(expected_defaults)} enum defaults as modelled"
    return outcome_from(problems, detail, samples)


def _default_literal(expression: str | None) -> str | None:
    """``'STUDENT'::role`` -> ``STUDENT``; anything that is not a plain literal -> None."""
    match = re.fullmatch(r"'((?:[^']|'')*)'(?:::[\w.\"]+)*", expression or "")
    return match.group(1).replace("''", "'") if match else None


def indexes(context: CheckContext) -> Outcome:
    """Every index the models declare exists on the declared columns; no index is invalid or unready."""
    declared = {
        str(index.name): (table.name, [str(getattr(part, "name", part)) for part in index.expressions])
        for table in Base.metadata.tables.values()
        for index in table.indexes
    }
    with context.connection() as connection:
        present = {row[0]: (row[1], list(row[2])) for row in connection.execute(INDEX_COLUMNS)}
        broken = connection.execute(BROKEN_INDEXES).mappings().all()
        hidden_builds = connection.execute(text(HIDDEN_BUILDS)).scalar_one() if broken else 0
    problems: list[str] = []
    samples: list[dict[str, Any]] = []
    for name, (table, columns) in sorted(declared.items()):
        if present.get(name) == (table, columns):
            continue
        if name not in present:
            problems.append(f"declared index {name} on {table} ({', '.join(columns)}) is missing")
        else:
            problems.append(f"index {name} covers {present[name]}, the models declare {table} {columns}")
        samples.append({"index": name, "table": table, "columns": columns, "problem": "missing or different"})
    for row in broken:
        state = "invalid" if not row["valid"] else "not ready"
        problems.append(
            f"index {row['index']} on {row['table']} is {state}: drop it and build it again"
            + _hidden_builds_note(hidden_builds)
        )
        samples.append({"index": row["index"], "table": row["table"], "problem": state})
    return outcome_from(problems, f"{len(declared)} declared indexes present, none invalid", samples)


def _hidden_builds_note(hidden_builds: int) -> str:
    if not hidden_builds:
        return ""
    return (
        f" (unless it is one of {hidden_builds} index build(s) running in this database that this role "
        "cannot see: GRANT pg_read_all_stats to it to tell)"
    )
