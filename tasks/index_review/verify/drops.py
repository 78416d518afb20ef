"""Drop advice checked against the workload: each index the review would drop, dropped on the copy in a
transaction that is rolled back, and the workload's statements on its table timed without it.

An index with no scans since the statistics were reset may still be the one a monthly report or a
statement that ran before the reset needs; the workload says which statements read the table, and the
copy says whether any of those whose plan reads the index gets slower without it. Slower means more
than :data:`NOISE` slower and by more than :data:`NOISE_FLOOR_MS`: a statement of a tenth of a
millisecond varies by more than a fifth between runs by itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg

from models.index_review import Finding
from models.workload import StatementTiming
from tasks.index_review import statements
from tasks.index_review.verify.explain import statement_timing, time_statement
from tasks.index_review.verify.measure import Baseline, first_line
from tasks.index_review.verify.sampling import Session

#: How much slower a statement may measure without the index before the drop is called off.
NOISE = 0.20
NOISE_FLOOR_MS = 0.05

_INDEX_SCHEMA = """
    SELECT n.nspname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.relname = %s AND c.relkind IN ('i', 'I') AND n.nspname = current_schema()
"""


@dataclass(frozen=True)
class DropCheck:
    """The workload's statements on the table, timed with the index (before) and without (after)."""

    finding: str
    timings: tuple[StatementTiming, ...] = ()
    reason: str | None = None

    def slower(self) -> list[StatementTiming]:
        return [timing for timing in self.timings if got_slower(timing)]


def got_slower(timing: StatementTiming) -> bool:
    return (
        timing.ms_after > timing.ms_before * (1 + NOISE)
        and timing.ms_after - timing.ms_before > NOISE_FLOOR_MS
    )


def statements_on(table: str, tables: Mapping[str, frozenset[tuple[str, str]]]) -> list[str]:
    """Keys of the statements whose plans read *table*."""
    return [key for key, read in tables.items() if any(name == table for _, name in read)]


def check_drops(
    baseline: Baseline,
    findings: Sequence[Finding],
    tables: Mapping[str, frozenset[tuple[str, str]]],
) -> dict[str, DropCheck]:
    """A :class:`DropCheck` for each finding that would drop an index (by finding id)."""
    checks: dict[str, DropCheck] = {}
    for finding in findings:
        if finding.index is None or finding.table is None:
            continue
        keys = [key for key in statements_on(finding.table, tables) if baseline.sampled.get(key)]
        measurable = [key for key in keys if baseline.sampled[key].sets]
        if not measurable:
            checks[finding.id] = DropCheck(
                finding.id, reason="no measurable workload statement reads the table"
            )
            continue
        try:
            checks[finding.id] = _without(baseline, finding, measurable)
        except psycopg.Error as error:
            checks[finding.id] = DropCheck(finding.id, reason=f"the copy refused it: {first_line(error)}")
    return checks


def _without(baseline: Baseline, finding: Finding, keys: Sequence[str]) -> DropCheck:
    connection: Session = baseline.connection
    before = {key: baseline.timing(key) for key in keys}
    # Only a statement whose plan reads the index can get slower without it; timing the others too
    # would let the noise of a busy machine call off a drop.
    keys = [key for key in keys if finding.index in before[key].indexes]
    if not keys:
        return DropCheck(finding.id, reason="no workload statement's plan on the copy reads it")
    found = connection.execute(_INDEX_SCHEMA, (finding.index,)).fetchone()
    if found is None:
        return DropCheck(finding.id, reason=f"{finding.index} is not on the copy (the backup predates it)")
    index = f"{statements.quote(str(found[0]))}.{statements.quote(str(finding.index))}"
    with connection.transaction(force_rollback=True):
        connection.execute(f"DROP INDEX {index}")
        timings = []
        for key in keys:
            sampled = baseline.sampled[key]
            after = time_statement(connection, sampled.statement.query, sampled.sets)
            timings.append(statement_timing(key, before[key], after))
    return DropCheck(finding.id, timings=tuple(timings))
