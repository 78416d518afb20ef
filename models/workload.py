"""The application's workload and the indexes advised for it: what the review reads, costs and proves.

The advice moves through three stages, each adding to what the one before it found:

1. :class:`WorkloadStatement`: a statement the application runs (from ``pg_stat_statements`` or a
   ``--queries`` file), with how often it runs.
2. :class:`IndexCandidate`: an index derived from the statements' generic plans (equality columns first,
   then one range column, then the sort columns), with the statements it would serve and, where hypopg
   can tell, the planner's cost of each statement without and with it.
3. :class:`IndexMeasurement`: what building the candidate for real on a restored copy of production
   measured (``--verify``): the statements' median times before and after, the build's time and size,
   and the write overhead.

These are plain values so that the pure logic (candidates, the choice of a set, the verdict of a
measurement) is tested without a server.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class StatementSource(StrEnum):
    STATISTICS = "pg_stat_statements"
    FILE = "file"


class WorkloadStatement(BaseModel):
    """One statement of the workload, as normalised text with ``$n`` placeholders."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(description="Stable name: 'q:<queryid>' from pg_stat_statements, 'f:<n>' from a file.")
    query: str
    calls: int = Field(description="Calls since the statistics were reset; a file's statements count 1.")
    total_ms: float = 0.0
    mean_ms: float = 0.0
    source: StatementSource = StatementSource.STATISTICS


class ParameterUse(BaseModel):
    """What a statement's ``$position`` is compared with, so real values can be sampled for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    position: int
    schema_name: str
    table: str
    column: str


class StatementCost(BaseModel):
    """The planner's total cost of one statement without and with a candidate (hypothetical or built)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    statement: str = Field(description="The WorkloadStatement key.")
    calls: int
    before: float
    after: float

    @property
    def saved(self) -> float:
        return max(self.before - self.after, 0.0) * self.calls


class IndexCandidate(BaseModel):
    """An index the workload asks for, on one table, with its ordered columns and optional predicate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_name: str
    table: str
    columns: tuple[str, ...] = Field(description="Ordered: equality columns, one range column, sort columns.")
    where: str | None = Field(default=None, description="Partial-index predicate, or None.")
    statements: tuple[str, ...] = Field(description="Keys of the statements it serves.")
    costs: tuple[StatementCost, ...] = Field(
        default=(), description="Per statement, the estimated cost before and after; empty: not costed."
    )
    write_overhead: float = Field(
        default=0.0, description="Estimated cost of the index on the table's writes, in the score's units."
    )

    @property
    def score(self) -> float:
        """Calls times cost saved over the workload, less the write overhead."""
        return sum(cost.saved for cost in self.costs) - self.write_overhead

    @property
    def name(self) -> str:
        """The index's name, as the advice creates it (within PostgreSQL's 63 bytes)."""
        base = "_".join(("ix", self.table, *self.columns))
        if self.where is not None:
            base += "_partial"
        return base.encode()[:63].decode(errors="ignore")


class StatementTiming(BaseModel):
    """One statement measured on the copy with ``EXPLAIN (ANALYZE, BUFFERS)``: medians of several runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    statement: str
    ms_before: float
    ms_after: float
    buffers_before: int
    buffers_after: int

    @property
    def speedup(self) -> float:
        return self.ms_before / self.ms_after if self.ms_after > 0 else float("inf")


class IndexMeasurement(BaseModel):
    """A candidate built for real on a restored copy, and what it changed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    candidate: IndexCandidate
    timings: tuple[StatementTiming, ...]
    build_seconds: float
    size_bytes: int
    insert_wal_bytes_before: int = Field(description="WAL of a fixed batch of inserts without the index.")
    insert_wal_bytes_after: int = Field(description="The same batch with the index.")

    def proven(self, min_speedup: float) -> bool:
        """Recommended only when every statement it serves measured at least *min_speedup* faster."""
        return bool(self.timings) and all(timing.speedup >= min_speedup for timing in self.timings)
