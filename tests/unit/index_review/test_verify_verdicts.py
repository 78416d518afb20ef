"""--verify's pure logic: which parameters can be sampled, and the verdicts the copy's numbers give."""

from __future__ import annotations

import pytest

from models.index_review import Finding, FindingKind
from models.workload import IndexCandidate, IndexMeasurement, ParameterUse, StatementTiming
from tasks.index_review.verify.drops import DropCheck, got_slower
from tasks.index_review.verify.sampling import (
    missing_uses,
    paging_values,
    parameter_positions,
    sample_percent,
)
from tasks.index_review.verify.verdicts import verified_findings

QUERY = (
    "SELECT * FROM audit_logs WHERE actor_id = $1 AND created_at >= $2 ORDER BY created_at LIMIT $3 OFFSET $4"
)
CANDIDATE = IndexCandidate(
    schema_name="public", table="audit_logs", columns=("actor_id", "created_at"), statements=("q:1", "q:2")
)


def use(position: int, column: str) -> ParameterUse:
    return ParameterUse(position=position, schema_name="public", table="audit_logs", column=column)


def timing(key: str, before: float, after: float) -> StatementTiming:
    return StatementTiming(
        statement=key, ms_before=before, ms_after=after, buffers_before=100, buffers_after=4
    )


def measurement(*timings: StatementTiming) -> IndexMeasurement:
    return IndexMeasurement(
        candidate=CANDIDATE,
        timings=timings,
        build_seconds=0.5,
        size_bytes=8192,
        insert_wal_bytes_before=1000,
        insert_wal_bytes_after=1500,
    )


def workload_finding() -> Finding:
    return Finding.about(
        FindingKind.WORKLOAD_INDEX,
        CANDIDATE.name,
        table="audit_logs",
        index=CANDIDATE.name,
        evidence={"columns": list(CANDIDATE.columns)},
        recommendation="index audit_logs (actor_id, created_at)",
        sql=["CREATE INDEX CONCURRENTLY ..."],
        statements=[
            {"key": "q:1", "query": "SELECT 1", "calls": 10},
            {"key": "q:2", "query": "SELECT 2", "calls": 3},
        ],
    )


def unused_finding() -> Finding:
    return Finding.about(
        FindingKind.UNUSED,
        "ix_audit_logs_actor_id",
        table="audit_logs",
        index="ix_audit_logs_actor_id",
        evidence={"scans": 0},
        recommendation="drop ix_audit_logs_actor_id",
        sql=["DROP INDEX CONCURRENTLY ix_audit_logs_actor_id"],
        undo_sql=["CREATE INDEX CONCURRENTLY ..."],
    )


def verify(
    finding: Finding,
    *,
    measured: IndexMeasurement | None = None,
    reason: str | None = None,
    drop: DropCheck | None = None,
) -> Finding:
    [verified] = verified_findings(
        [finding],
        measurements={CANDIDATE.name: measured} if measured else {},
        not_measured_reasons={CANDIDATE.name: reason} if reason else {},
        notes={},
        drops={finding.id: drop} if drop else {},
        min_speedup=2.0,
        backup="20261203T000000Z-abcdef",
    )
    return verified


def test_parameters_are_sampled_from_columns_and_paging_gets_a_page() -> None:
    assert parameter_positions(QUERY) == [1, 2, 3, 4]
    assert paging_values(QUERY) == {3: "100", 4: "0"}
    assert missing_uses(QUERY, [use(1, "actor_id"), use(2, "created_at")]) == []
    assert missing_uses(QUERY, [use(1, "actor_id")]) == [2]
    assert parameter_positions("SELECT '$1', $10 FROM t") == [1, 10]


def test_the_sample_aims_at_twenty_rows_per_set_and_stays_a_percentage() -> None:
    assert sample_percent(1_000_000, 5) == pytest.approx(0.01)
    assert sample_percent(10_000, 5) == pytest.approx(1.0)
    assert sample_percent(50, 5) == 100.0
    assert sample_percent(0, 5) == 100.0


def test_an_index_is_recommended_only_when_every_statement_measured_fast_enough() -> None:
    fast = verify(
        workload_finding(), measured=measurement(timing("q:1", 40.0, 0.4), timing("q:2", 10.0, 2.0))
    )
    assert fast.evidence["verdict"] == "recommended"
    assert fast.recommendation.startswith("recommended: ")
    assert (fast.measured_ms_before, fast.measured_ms_after) == (50.0, 2.4)
    assert fast.evidence["speedup"] == 5.0
    assert fast.statements is not None
    assert fast.statements[0]["ms_after"] == 0.4

    one_short = verify(
        workload_finding(), measured=measurement(timing("q:1", 40.0, 0.4), timing("q:2", 3.0, 2.0))
    )
    assert one_short.evidence["verdict"] == "not proven"
    assert one_short.recommendation.startswith("not proven: ")


def test_an_index_that_measured_slower_is_never_recommended() -> None:
    slower = verify(workload_finding(), measured=measurement(timing("q:1", 1.0, 1.5)))
    assert slower.evidence["verdict"] == "not proven"
    assert "recommended" not in slower.recommendation


def test_an_index_not_measured_says_why() -> None:
    unmeasured = verify(workload_finding(), reason="$2 is compared with no column the plan shows")
    assert unmeasured.evidence["verdict"] == "not measured"
    assert "$2 is compared with no column" in unmeasured.recommendation


def test_a_drop_that_slows_a_statement_is_kept_and_its_sql_withdrawn() -> None:
    assert got_slower(timing("q:1", 1.0, 1.3))
    assert not got_slower(timing("q:1", 1.0, 1.15))  # within the noise
    assert not got_slower(timing("q:1", 0.02, 0.05))  # a fifth of nothing

    kept = verify(unused_finding(), drop=DropCheck(unused_finding().id, timings=(timing("q:1", 0.1, 30.0),)))
    assert kept.evidence["verdict"] == "kept"
    assert kept.recommendation.startswith("kept: statement q:1 0.10 -> 30.00 ms")
    assert kept.sql == []
    assert kept.undo_sql == []

    dropped = verify(
        unused_finding(), drop=DropCheck(unused_finding().id, timings=(timing("q:1", 1.0, 1.05),))
    )
    assert dropped.evidence["verdict"] == "drop"
    assert dropped.sql == unused_finding().sql
