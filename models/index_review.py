"""The index review report: advice on indexes and table maintenance, each finding with its SQL.

A finding is advice, never a failure: the ``index-review`` flow completes whatever it finds. Each
finding has a stable ``id`` (``kind:object``) so ``dbops review-indexes --apply ID`` can name it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FindingKind(StrEnum):
    UNUSED = "unused"
    REDUNDANT = "redundant"
    INVALID = "invalid"
    FOREIGN_KEY_WITHOUT_INDEX = "fk-without-index"
    INDEX_BLOAT = "index-bloat"
    TABLE_BLOAT = "table-bloat"
    SEQUENTIAL_SCANS = "seq-scans"
    SLOW_QUERY = "slow-query"
    MISSING_INDEX = "missing-index"
    WORKLOAD_INDEX = "workload-index"
    UNDECLARED_INDEX = "undeclared-index"
    VACUUM = "vacuum"
    ANALYZE = "analyze"


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="kind:object, stable between runs; what --apply takes.")
    kind: FindingKind
    table: str | None = Field(default=None, description="None for a slow query, which may span tables.")
    index: str | None = Field(default=None, description="The index concerned, or the one to create.")
    evidence: dict[str, Any] = Field(description="The numbers the finding rests on.")
    recommendation: str
    sql: list[str] = Field(
        default_factory=list, description="Statements that act on the finding, run in order; none: advice."
    )
    undo_sql: list[str] = Field(default_factory=list, description="Statements that reverse ``sql``.")
    online: bool = Field(
        default=True,
        description="``sql`` runs without blocking reads and writes, so --apply may run it; "
        "otherwise it belongs in a maintenance window.",
    )
    tentative: bool = Field(
        default=False, description="Statistics are too young to be sure (unused indexes)."
    )
    # Workload findings only; None elsewhere (and in reports written before they existed).
    columns: list[str] | None = Field(default=None, description="The advised index's ordered columns.")
    where: str | None = Field(default=None, description="The advised index's partial predicate.")
    statements: list[dict[str, Any]] | None = Field(
        default=None, description="The statements it serves: key, query, calls (and costs when known)."
    )
    estimated_cost_before: float | None = Field(
        default=None, description="Planner cost of its statements, calls times cost, without it."
    )
    estimated_cost_after: float | None = Field(
        default=None, description="The same with it (hypothetical); None: not costed."
    )
    measured_ms_before: float | None = Field(default=None, description="Measured by --verify, without it.")
    measured_ms_after: float | None = Field(default=None, description="Measured by --verify, with it.")
    alembic: str | None = Field(default=None, description="The Alembic revision body that builds it.")
    model: str | None = Field(default=None, description="Its declaration for the table's __table_args__.")

    @classmethod
    def about(cls, kind: FindingKind, subject: str, **fields: Any) -> Finding:
        """A finding of *kind* about *subject* (an index, table, constraint or query id), which makes
        its id."""
        return cls(id=f"{kind.value}:{subject}", kind=kind, **fields)

    @property
    def applicable(self) -> bool:
        return bool(self.sql) and self.online


class SlowQueryStatistics(BaseModel):
    """Whether ``pg_stat_statements`` could be read, and how to make it readable when not."""

    available: bool
    detail: str


class Verdict(StrEnum):
    """What ``--verify`` measured of a finding on the restored copy."""

    RECOMMENDED = "recommended"
    NOT_PROVEN = "not proven"
    NOT_MEASURED = "not measured"
    DROP = "drop"
    KEPT = "kept"


class Verification(BaseModel):
    """How ``--verify`` measured: on which backup, how many runs per statement, what speedup counts."""

    backup: str
    runs: int
    min_speedup: float
    elapsed_seconds: float
    verdicts: dict[str, int] = Field(default_factory=dict, description="Findings per verdict.")


class IndexReviewReport(BaseModel):
    database: str
    server_version: str
    reviewed_at: datetime
    elapsed_seconds: float
    statistics_since: datetime | None = Field(
        description="When usage counters started: the last statistics reset, else the server's start."
    )
    statistics_age_days: float | None
    slow_queries: SlowQueryStatistics
    warnings: list[str] = Field(
        default_factory=list,
        description="What this server's catalogue could not tell the review (an older major lacks a "
        "statistic), and so what the findings do not judge.",
    )
    findings: list[Finding]
    verification: Verification | None = Field(
        default=None, description="Set by --verify: the advice measured on a restored copy."
    )

    def finding(self, finding_id: str) -> Finding | None:
        return next((finding for finding in self.findings if finding.id == finding_id), None)

    def count_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.kind.value] = counts.get(finding.kind.value, 0) + 1
        return counts
