"""One workload statement timed on the copy with ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)``.

Each run executes the statement for real, so it runs in a transaction that is rolled back: a
statement that writes leaves the copy as it found it, and the next run (and the next candidate) sees
the same rows. Parameters are bound with ``PREPARE``/``EXECUTE`` under ``force_custom_plan``, the plan
an application gets for its first executions of a statement with these values.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from models.workload import StatementTiming
from tasks.index_review.verify.sampling import Session

_names = itertools.count(1)


@dataclass(frozen=True)
class Timing:
    """Medians over the parameter sets: execution milliseconds and shared buffers read plus hit."""

    ms: float
    buffers: int
    indexes: frozenset[str] = frozenset()


def literal(value: str) -> str:
    """*value* as an untyped SQL literal: ``EXECUTE`` casts it to the parameter's type."""
    return "'" + value.replace("'", "''") + "'"


def plan_buffers(plan: dict[str, Any]) -> int:
    """Shared buffers the whole statement touched: the top node counts its children's."""
    top = plan.get("Plan", {})
    return int(top.get("Shared Hit Blocks", 0)) + int(top.get("Shared Read Blocks", 0))


def plan_indexes(node: dict[str, Any]) -> frozenset[str]:
    """The indexes any node of the plan reads."""
    own = {str(node["Index Name"])} if "Index Name" in node else set()
    return frozenset(own.union(*(plan_indexes(child) for child in node.get("Plans", ()))))


def timing_of(runs: Sequence[tuple[float, int, frozenset[str]]]) -> Timing:
    return Timing(
        ms=round(statistics.median(ms for ms, _, _ in runs), 3),
        buffers=int(statistics.median(buffers for _, buffers, _ in runs)),
        indexes=frozenset().union(*(indexes for _, _, indexes in runs)),
    )


def statement_timing(key: str, before: Timing, after: Timing) -> StatementTiming:
    return StatementTiming(
        statement=key,
        ms_before=before.ms,
        ms_after=after.ms,
        buffers_before=before.buffers,
        buffers_after=after.buffers,
    )


def time_statement(
    connection: Session, query: str, parameter_sets: Sequence[tuple[str, ...]], *, warm_up: bool = True
) -> Timing:
    """Run *query* once with each parameter set (after one unmeasured run that brings its pages into
    the cache, so the first candidate is not the one that pays for a cold cache) and return the medians.
    *connection* is in autocommit mode."""
    name = f"dbops_verify_{next(_names)}"
    connection.execute(f"PREPARE {name} AS {query}")  # a failure here leaves nothing to deallocate
    try:
        if warm_up:
            _run(connection, name, parameter_sets[0])
        return timing_of([_run(connection, name, values) for values in parameter_sets])
    finally:
        connection.execute(f"DEALLOCATE {name}")


def _run(connection: Session, name: str, values: tuple[str, ...]) -> tuple[float, int, frozenset[str]]:
    arguments = f"({', '.join(literal(value) for value in values)})" if values else ""
    with connection.transaction(force_rollback=True):
        row = connection.execute(
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {name}{arguments}"
        ).fetchone()
    assert row is not None
    document = row[0]
    plan = (document if isinstance(document, list) else [document])[0]
    return float(plan["Execution Time"]), plan_buffers(plan), plan_indexes(plan.get("Plan", {}))
