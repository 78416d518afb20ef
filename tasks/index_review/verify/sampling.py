"""Real parameter values for the workload's statements, sampled from the columns they are compared with.

A statement from ``pg_stat_statements`` has ``$n`` where the application passed values. Timing it with
NULLs or made-up values would measure a plan no user gets, so each ``$n`` takes values from the column
the plan compares it with (:class:`~models.workload.ParameterUse`). The parameters of one table are
sampled from the same rows, so that ``user_id = $1 AND action = $2`` asks for a pair that exists.
``LIMIT $n`` and ``OFFSET $n`` (pg_stat_statements normalises those constants too) get a page's size
and no offset.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from models.workload import ParameterUse, WorkloadStatement
from tasks.postgres.engine import quote_identifier

Session = psycopg.Connection[tuple[Any, ...]]
#: The page size a ``LIMIT $n`` is measured with; the application's own value is not recorded.
DEFAULT_LIMIT = "100"
_PARAMETER = re.compile(r"(?<![\w$])\$(\d+)\b")
_PAGING = re.compile(r"\b(LIMIT|OFFSET)\s+\$(\d+)\b", re.IGNORECASE)
#: How many more rows than needed the table sample aims at, so the sets are spread over the table.
_OVERSAMPLE = 20


@dataclass(frozen=True)
class Sampled:
    """Parameter sets for one statement (each a tuple of ``$1..$n`` as text), or why there are none."""

    statement: WorkloadStatement
    sets: tuple[tuple[str, ...], ...] = ()
    reason: str | None = None


def parameter_positions(query: str) -> list[int]:
    """The ``$n`` positions in *query*, in order."""
    return sorted({int(match.group(1)) for match in _PARAMETER.finditer(query)})


def paging_values(query: str) -> dict[int, str]:
    """Values for the positions used as ``LIMIT``/``OFFSET``."""
    return {
        int(position): DEFAULT_LIMIT if word.upper() == "LIMIT" else "0"
        for word, position in _PAGING.findall(query)
    }


def missing_uses(query: str, uses: Sequence[ParameterUse]) -> list[int]:
    """Positions neither compared with a column nor used for paging: they cannot be sampled."""
    known = {use.position for use in uses} | set(paging_values(query))
    return [position for position in parameter_positions(query) if position not in known]


def sample_percent(estimated_rows: float, wanted: int) -> float:
    """The ``TABLESAMPLE SYSTEM`` percentage that returns about ``wanted * 20`` rows."""
    if estimated_rows <= 0:
        return 100.0
    return min(100.0, max(0.01, 100.0 * wanted * _OVERSAMPLE / estimated_rows))


def sample_parameters(
    connection: Session,
    statement: WorkloadStatement,
    uses: Sequence[ParameterUse],
    count: int,
) -> Sampled:
    """*count* parameter sets for *statement*; a statement without parameters gets one empty set."""
    positions = parameter_positions(statement.query)
    if not positions:
        return Sampled(statement, sets=((),))
    missing = missing_uses(statement.query, uses)
    if missing:
        listed = ", ".join(f"${position}" for position in missing)
        return Sampled(statement, reason=f"{listed} is compared with no column the plan shows")
    values: dict[int, list[str]] = {
        position: [value] * count for position, value in paging_values(statement.query).items()
    }
    by_table: dict[tuple[str, str], list[ParameterUse]] = {}
    for use in uses:
        by_table.setdefault((use.schema_name, use.table), []).append(use)
    for (schema, table), table_uses in by_table.items():
        rows = _sample_rows(connection, schema, table, [use.column for use in table_uses], count)
        if not rows:
            columns = ", ".join(use.column for use in table_uses)
            return Sampled(statement, reason=f"{table} has no rows with {columns} set to sample from")
        for index, use in enumerate(table_uses):
            values[use.position] = [str(rows[n % len(rows)][index]) for n in range(count)]
    sets = tuple(tuple(values[position][n] for position in positions) for n in range(count))
    return Sampled(statement, sets=sets)


def _sample_rows(
    connection: Session,
    schema: str,
    table: str,
    columns: Sequence[str],
    count: int,
) -> list[tuple[object, ...]]:
    """Up to *count* rows of *columns* (as text, none NULL): from a block sample of the table, or from
    the whole table when the sample comes up short (a small table)."""
    relation = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    selected = ", ".join(f"{quote_identifier(column)}::text" for column in columns)
    present = " AND ".join(f"{quote_identifier(column)} IS NOT NULL" for column in columns)
    estimated = connection.execute(
        "SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = %s::regclass", (relation,)
    ).fetchone()
    percent = sample_percent(float(estimated[0]) if estimated else 0.0, count)
    rows = connection.execute(
        f"SELECT {selected} FROM {relation} TABLESAMPLE SYSTEM ({percent:.4f}) WHERE {present} "
        f"ORDER BY random() LIMIT {int(count)}"
    ).fetchall()
    if len(rows) < count:
        rows = connection.execute(
            f"SELECT {selected} FROM {relation} WHERE {present} ORDER BY random() LIMIT {int(count)}"
        ).fetchall()
    return list(rows)
