"""What a migration does to production-sized data, measured on a copy, and whether it may run.

``dbops migrate --plan`` applies the pending revisions to a restored copy of the database with a
tracer (:mod:`tasks.schema.tracer`) and records, per statement, its duration, the locks it took and
how long they were held, the relations it rewrote, the WAL it wrote and how long the application's
reads and writes would have waited. The verdict here is pure: it reads those measurements and the
limits, so it is the same in a test, the CLI and the flow.

Pure: no I/O.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

#: Lock modes that block the application: every mode that conflicts with ROW EXCLUSIVE (a write),
#: ACCESS EXCLUSIVE also blocking reads. SHARE UPDATE EXCLUSIVE (VALIDATE CONSTRAINT, CREATE INDEX
#: CONCURRENTLY) and weaker let both through.
BLOCKING_MODES = frozenset({"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"})
#: The module-level name a revision declares its allowances under: ``{"lock": "why", "rewrite": "why"}``.
ALLOWANCE = "DBOPS_PLAN_ALLOW"


class LockHeld(BaseModel):
    relation: str
    mode: str
    held_seconds: float = Field(description="From the statement that took it to the end of its transaction.")


class Blocked(BaseModel):
    max: float = Field(description="The longest time the probes were blocked in a row, seconds.")
    total: float


class StatementTrace(BaseModel):
    sql: str
    seconds: float
    rows: int | None = None
    wal_bytes: int = 0
    rewrites: list[str] = Field(default_factory=list)
    locks: list[LockHeld] = Field(default_factory=list)
    probe_blocked_seconds: dict[str, Blocked] = Field(default_factory=dict)
    sizes: dict[str, tuple[int, int]] = Field(
        default_factory=dict, description="Bytes before and after, for each relation it locked."
    )
    lint: list[str] = Field(default_factory=list)


class RevisionTrace(BaseModel):
    revision: str
    seconds: float
    allowed: dict[str, str] = Field(default_factory=dict)
    statements: list[StatementTrace] = Field(default_factory=list)
    failures: list[str] = Field(default_factory=list, description="Why the revision fails the plan.")
    accepted: list[str] = Field(default_factory=list, description="Failures its allowances accept.")


class MigrationPlan(BaseModel):
    backup: str | None
    database: str
    from_revision: str | None
    to_revision: str | None
    verdict: Literal["pass", "fail"]
    max_lock_seconds: float
    max_rewrite_mb: float
    revisions: list[RevisionTrace] = Field(default_factory=list)


def judge(
    revision: RevisionTrace,
    *,
    rows: dict[str, int],
    max_lock_seconds: float,
    max_rewrite_mb: float,
) -> RevisionTrace:
    """Fill in why *revision* fails the plan, and which of those its allowances accept.

    A lock blocks the application when its mode conflicts with a write; it fails the plan when it
    is held longer than *max_lock_seconds* on a table with rows (*rows*, by ``schema.table``). A
    rewrite fails it when the rewritten relation was larger than *max_rewrite_mb* before.
    """
    failures: list[tuple[str, str]] = []
    for statement in revision.statements:
        for lock in statement.locks:
            if (
                lock.mode in BLOCKING_MODES
                and rows.get(lock.relation, 0) > 0
                and lock.held_seconds > max_lock_seconds
            ):
                failures.append(
                    (
                        "lock",
                        f"{lock.mode} on {lock.relation} ({rows[lock.relation]:,} rows) held "
                        f"{lock.held_seconds:.1f} s, over {max_lock_seconds:g} s",
                    )
                )
        for relation in statement.rewrites:
            before = statement.sizes.get(relation, (0, 0))[0]
            if before > max_rewrite_mb * 1024 * 1024:
                failures.append(
                    (
                        "rewrite",
                        f"rewrites {relation} ({before / 1024 / 1024:,.0f} MB), over {max_rewrite_mb:g} MB",
                    )
                )
    revision.failures = [line for kind, line in failures if kind not in revision.allowed]
    revision.accepted = [
        f"{line} (allowed: {revision.allowed[kind]})" for kind, line in failures if kind in revision.allowed
    ]
    return revision


def verdict(revisions: list[RevisionTrace]) -> Literal["pass", "fail"]:
    return "fail" if any(revision.failures for revision in revisions) else "pass"
