"""The numbers from the copy written onto the review's findings: pure functions, no I/O.

A workload finding is **recommended** only when every statement it serves measured at least
``min_speedup`` times faster (so one that measured slower never is); otherwise it is **not proven**,
with its numbers, or **not measured**, with the reason. A drop finding stays a drop unless a workload
statement on its table got slower without the index: then it is **kept**, and its SQL is withdrawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.index_review import Finding, FindingKind, Verdict
from models.workload import IndexMeasurement, StatementTiming
from tasks.index_review.verify.drops import DropCheck

DROP_KINDS = frozenset({FindingKind.UNUSED, FindingKind.REDUNDANT})


def measured_evidence(measurement: IndexMeasurement, verdict: Verdict) -> dict[str, Any]:
    timings = measurement.timings
    return {
        "verdict": verdict.value,
        "measured_ms_before": round(sum(t.ms_before for t in timings), 3),
        "measured_ms_after": round(sum(t.ms_after for t in timings), 3),
        "speedup": round(min(t.speedup for t in timings), 1),
        "buffers_before": sum(t.buffers_before for t in timings),
        "buffers_after": sum(t.buffers_after for t in timings),
        "build_seconds": measurement.build_seconds,
        "size_bytes": measurement.size_bytes,
        "insert_wal_before_bytes": measurement.insert_wal_bytes_before,
        "insert_wal_after_bytes": measurement.insert_wal_bytes_after,
    }


def with_measurement(
    finding: Finding, measurement: IndexMeasurement, min_speedup: float, backup: str, note: str | None
) -> Finding:
    """*finding* (a workload index) with what building its index on the copy measured."""
    proven = measurement.proven(min_speedup)
    verdict = Verdict.RECOMMENDED if proven else Verdict.NOT_PROVEN
    before = sum(t.ms_before for t in measurement.timings)
    after = sum(t.ms_after for t in measurement.timings)
    slowest = min(measurement.timings, key=lambda t: t.speedup)
    numbers = (
        f"on a copy of backup {backup} its {len(measurement.timings)} statement(s) took {after:,.2f} ms "
        f"instead of {before:,.2f} ms (median per call; the least sped up, {slowest.statement}, "
        f"{slowest.speedup:,.1f}x)"
    )
    if proven:
        recommendation = f"recommended: {numbers}; build it, then add the revision and the model declaration"
    else:
        recommendation = (
            f"not proven: {numbers}, short of the {min_speedup:g}x --verify asks of every statement; "
            "do not build it on this evidence"
        )
    timings = {t.statement: t for t in measurement.timings}
    rows = [
        row
        | ({"ms_before": timings[key].ms_before, "ms_after": timings[key].ms_after} if key in timings else {})
        for row in finding.statements or ()
        if (key := str(row.get("key"))) or True
    ]
    evidence = finding.evidence | measured_evidence(measurement, verdict) | ({"note": note} if note else {})
    return finding.model_copy(
        update={
            "evidence": evidence,
            "recommendation": recommendation,
            "measured_ms_before": round(before, 3),
            "measured_ms_after": round(after, 3),
            "statements": rows if finding.statements is not None else None,
        }
    )


def _timed(row: dict[str, Any], timings: Mapping[str, StatementTiming]) -> dict[str, Any]:
    timing = timings.get(str(row.get("key")))
    return row if timing is None else row | {"ms_before": timing.ms_before, "ms_after": timing.ms_after}


def not_measured(finding: Finding, reason: str) -> Finding:
    return finding.model_copy(
        update={
            "evidence": finding.evidence | {"verdict": Verdict.NOT_MEASURED.value},
            "recommendation": f"not measured ({reason}): {finding.recommendation}",
        }
    )


def not_worth_it(finding: Finding, reason: str) -> Finding:
    """A candidate that building it on the copy showed not worth measuring: the planner would not
    use it, or not to any saving."""
    return finding.model_copy(
        update={
            "evidence": finding.evidence | {"verdict": Verdict.NOT_PROVEN.value},
            "recommendation": f"not proven: {reason}; do not build it on this evidence",
        }
    )


def with_drop_check(finding: Finding, check: DropCheck) -> Finding:
    """*finding* (an index to drop) kept when a workload statement got slower without the index."""
    if check.reason is not None:
        evidence = finding.evidence | {"verdict": Verdict.DROP.value, "workload": check.reason}
        return finding.model_copy(update={"evidence": evidence})
    slower = check.slower()
    worst = max(check.timings, key=lambda t: t.ms_after / t.ms_before if t.ms_before else 0.0)
    evidence = finding.evidence | {
        "verdict": (Verdict.KEPT if slower else Verdict.DROP).value,
        "statements_checked": len(check.timings),
        "measured_ms_before": worst.ms_before,
        "measured_ms_after": worst.ms_after,
    }
    if not slower:
        return finding.model_copy(
            update={
                "evidence": evidence,
                "recommendation": f"{finding.recommendation} (without it, none of the workload's "
                f"{len(check.timings)} statement(s) on {finding.table} got slower on the copy)",
            }
        )
    named = ", ".join(f"{t.statement} {t.ms_before:,.2f} -> {t.ms_after:,.2f} ms" for t in slower)
    return finding.model_copy(
        update={
            "evidence": evidence,
            "recommendation": f"kept: statement {named} without it on the copy; keep the index",
            "sql": [],
            "undo_sql": [],
        }
    )


def verified_findings(
    findings: list[Finding],
    *,
    measurements: Mapping[str, IndexMeasurement],
    not_measured_reasons: Mapping[str, str],
    not_chosen: Mapping[str, str] | None = None,
    notes: Mapping[str, str],
    drops: Mapping[str, DropCheck],
    min_speedup: float,
    backup: str,
) -> list[Finding]:
    """The review's findings with every verdict of the copy; findings it did not measure are as they were."""
    verified = []
    for finding in findings:
        index = finding.index or ""
        if finding.kind is FindingKind.WORKLOAD_INDEX and index in measurements:
            finding = with_measurement(finding, measurements[index], min_speedup, backup, notes.get(index))
        elif finding.kind is FindingKind.WORKLOAD_INDEX and index in (not_chosen or {}):
            finding = not_worth_it(finding, (not_chosen or {})[index])
        elif finding.kind is FindingKind.WORKLOAD_INDEX:
            finding = not_measured(finding, not_measured_reasons.get(index, "its index was not built"))
        elif finding.id in drops:
            finding = with_drop_check(finding, drops[finding.id])
        verified.append(finding)
    return verified


def count_verdicts(findings: list[Finding]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for finding in findings:
        verdict = finding.evidence.get("verdict")
        if isinstance(verdict, str):
            counts[verdict] = counts.get(verdict, 0) + 1
    return counts
