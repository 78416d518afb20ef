"""Each advised index built for real on the copy, and the statements it serves timed without and with it.

One candidate at a time: built (``CREATE INDEX``, not concurrently, since nobody else uses the copy),
analysed, measured, then dropped before the next. Measuring the chosen set together would be closer to
what applying all the advice gives, but then a candidate that does nothing would ride on one that does,
and each finding is applied (and so must be proven) on its own. The timings without an index are taken
once per statement and shared by every candidate that serves it, so all are compared with the same
baseline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import psycopg

from models.workload import IndexCandidate, IndexMeasurement
from tasks.index_review import statements
from tasks.index_review.verify.explain import Timing, statement_timing, time_statement
from tasks.index_review.verify.sampling import Sampled, Session
from tasks.index_review.verify.writes import insert_batch, insert_wal_bytes
from tasks.index_review.workload.costing import candidate_sql


def first_line(error: psycopg.Error) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
_log = logging.getLogger(__name__)


@dataclass
class Measured:
    """What the copy measured: each candidate's measurement, or why it has none; and the notes on
    what the numbers leave out (a table whose inserts could not be measured)."""

    measurements: dict[str, IndexMeasurement] = field(default_factory=dict)
    not_measured: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


class Baseline:
    """Timings and insert WAL of the copy as restored, each taken once and kept."""

    def __init__(self, connection: Session, sampled: Mapping[str, Sampled]) -> None:
        self.connection = connection
        self.sampled = sampled
        self.timings: dict[str, Timing] = {}
        self.wal: dict[tuple[str, str], int | None] = {}

    def timing(self, key: str) -> Timing:
        if key not in self.timings:
            self.timings[key] = time_statement(
                self.connection, self.sampled[key].statement.query, self.sampled[key].sets
            )
        return self.timings[key]

    def insert_wal(self, schema: str, table: str) -> int | None:
        if (schema, table) not in self.wal:
            self.wal[(schema, table)] = insert_wal_bytes(
                self.connection, insert_batch(self.connection, schema, table)
            )
        return self.wal[(schema, table)]


def measure_candidates(
    baseline: Baseline, candidates: Sequence[IndexCandidate], *, logger: Logger | None = None
) -> Measured:
    """Build, measure and drop each candidate on the copy behind the baseline's (autocommit) session."""
    log = logger or _log
    connection, sampled = baseline.connection, baseline.sampled
    measured = Measured()
    for candidate in candidates:
        served = [key for key in candidate.statements if key in sampled and sampled[key].sets]
        if not served:
            reasons = {sampled[key].reason for key in candidate.statements if key in sampled}
            measured.not_measured[candidate.name] = "; ".join(sorted(r for r in reasons if r)) or (
                "none of the statements it serves could be run on the copy"
            )
            continue
        try:
            wal_before = baseline.insert_wal(candidate.schema_name, candidate.table)
            for key in served:
                baseline.timing(key)
            timing = _with_index(baseline, candidate, served, wal_before)
        except psycopg.Error as error:
            # One statement that fails on the copy (a timeout, say) leaves the others measurable.
            measured.not_measured[candidate.name] = f"the copy refused it: {first_line(error)}"
            continue
        measured.measurements[candidate.name] = timing
        if wal_before is None:
            batch = insert_batch(connection, candidate.schema_name, candidate.table)
            measured.notes[candidate.name] = f"insert WAL not measured: {batch.reason}"
        log.info(
            "verify %s: %s",
            candidate.name,
            ", ".join(f"{t.statement} {t.ms_before:.2f} -> {t.ms_after:.2f} ms" for t in timing.timings),
        )
    return measured


def _with_index(
    baseline: Baseline, candidate: IndexCandidate, served: Sequence[str], wal_before: int | None
) -> IndexMeasurement:
    """Build *candidate*, time its statements and the insert batch with it, and drop it again (also
    when the measuring fails, so the next candidate is measured on the copy as restored)."""
    connection = baseline.connection
    relation = f"{statements.quote(candidate.schema_name)}.{statements.quote(candidate.table)}"
    index = f"{statements.quote(candidate.schema_name)}.{statements.quote(candidate.name)}"
    started = time.monotonic()
    try:
        connection.execute(candidate_sql(candidate, concurrently=False))
        build_seconds = time.monotonic() - started
        connection.execute(f"ANALYZE {relation}")
        size = connection.execute("SELECT pg_relation_size(%s::regclass)", (index,)).fetchone()
        timings = []
        for key in served:
            sampled = baseline.sampled[key]
            after = time_statement(connection, sampled.statement.query, sampled.sets)
            timings.append(statement_timing(key, baseline.timing(key), after))
        wal_after = insert_wal_bytes(
            connection, insert_batch(connection, candidate.schema_name, candidate.table)
        )
    finally:
        connection.execute(f"DROP INDEX IF EXISTS {index}")
    return IndexMeasurement(
        candidate=candidate,
        timings=tuple(timings),
        build_seconds=round(build_seconds, 3),
        size_bytes=int(size[0]) if size else 0,
        insert_wal_bytes_before=wal_before or 0,
        insert_wal_bytes_after=wal_after or 0,
    )
