"""The review as people read it: a markdown report (Prefect artifact), table rows, and terminal text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models.index_review import Finding, IndexReviewReport

_SECONDS_PER_DAY = 86_400
#: Shown on the verdict's own line (:func:`measured_line`), not again among the evidence.
_MEASURED_KEYS = ("verdict", "measured_ms_before", "measured_ms_after")


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_age(days: float | None) -> str:
    if days is None:
        return "an unknown time"
    if days < 1 / 24:
        return f"{days * 1440:.0f} minutes"
    if days < 1:
        return f"{days * 24:.1f} hours"
    return f"{days:.1f} days"


def days_since(moment: datetime | None, now: datetime) -> float | None:
    """Days from *moment* to *now*; None when the moment is unknown or never was."""
    return None if moment is None else (now - moment).total_seconds() / _SECONDS_PER_DAY


def evidence_line(finding: Finding) -> str:
    """The evidence on one line, sizes made readable: ``scans=0 size=12.3 MiB``."""
    parts = []
    for key, value in finding.evidence.items():
        if value is None or key in {"definition", "query", "statistics_since", *_MEASURED_KEYS}:
            continue
        if key.endswith("_bytes") and isinstance(value, int):
            parts.append(f"{key.removesuffix('_bytes')}={human_bytes(value)}")
        elif key.endswith("_days") and isinstance(value, float):
            parts.append(f"{key.removesuffix('_days')}={human_age(value)}")
        elif isinstance(value, list):
            parts.append(f"{key}={','.join(str(item) for item in value) or '-'}")
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts)


def measured_line(finding: Finding) -> str | None:
    """``--verify``'s verdict with the times it rests on: ``recommended: 41.20 ms -> 0.35 ms (117.7x)``."""
    verdict = finding.evidence.get("verdict")
    if verdict is None:
        return None
    before = finding.evidence.get("measured_ms_before")
    after = finding.evidence.get("measured_ms_after")
    if not isinstance(before, int | float) or not isinstance(after, int | float):
        return f"verified: {verdict}"
    speedup = f" ({before / after:,.1f}x)" if after > 0 else ""
    return f"verified: {verdict}, measured {before:,.2f} ms -> {after:,.2f} ms{speedup}"


def verification_line(report: IndexReviewReport) -> str | None:
    verification = report.verification
    if verification is None:
        return None
    counts = ", ".join(f"{count} {verdict}" for verdict, count in sorted(verification.verdicts.items()))
    return (
        f"verified on a copy of backup {verification.backup} in {verification.elapsed_seconds:.1f} s "
        f"(median of {verification.runs} run(s), recommended from {verification.min_speedup:g}x): "
        f"{counts or 'nothing to measure'}"
    )


def workload_text(finding: Finding) -> list[str]:
    """A workload finding's statements, and what makes its index part of the schema: the Alembic
    revision body and the model declaration."""
    lines = []
    for statement in finding.statements or ():
        cost = (
            f", cost {statement['cost_before']} -> {statement['cost_after']}"
            if "cost_before" in statement
            else ""
        )
        measured = (
            f" measured {statement['ms_before']} -> {statement['ms_after']} ms"
            if "ms_before" in statement
            else ""
        )
        lines.append(f"{statement['key']} ({statement['calls']} calls{cost}{measured}): {statement['query']}")
    if finding.model:
        lines.append(f"models/schema.py, the table's __table_args__: {finding.model}")
    if finding.alembic:
        lines += ["Alembic revision:", *finding.alembic.splitlines()]
    return lines


def table_rows(report: IndexReviewReport) -> list[dict[str, Any]]:
    return [
        {
            "id": finding.id,
            "kind": finding.kind.value,
            "table": finding.table or "",
            "index": finding.index or "",
            "tentative": finding.tentative,
            "verdict": str(finding.evidence.get("verdict", "")),
            "measured_ms_before": finding.evidence.get("measured_ms_before"),
            "measured_ms_after": finding.evidence.get("measured_ms_after"),
            "evidence": evidence_line(finding),
            "recommendation": finding.recommendation,
        }
        for finding in report.findings
    ]


def verification_rows(report: IndexReviewReport) -> list[dict[str, Any]]:
    """One row per finding ``--verify`` judged, with the numbers its verdict rests on."""
    keys = (
        "measured_ms_before",
        "measured_ms_after",
        "speedup",
        "buffers_before",
        "buffers_after",
        "build_seconds",
        "size_bytes",
        "insert_wal_before_bytes",
        "insert_wal_after_bytes",
    )
    return [
        {"id": finding.id, "verdict": finding.evidence["verdict"]}
        | {key: finding.evidence.get(key) for key in keys}
        for finding in report.findings
        if "verdict" in finding.evidence
    ]


def report_markdown(report: IndexReviewReport) -> str:
    age = human_age(report.statistics_age_days)
    lines = [
        f"# Index review of {report.database}: {len(report.findings)} finding(s)",
        "",
        f"PostgreSQL {report.server_version}, reviewed {report.reviewed_at:%Y-%m-%d %H:%M:%S %Z} in "
        f"{report.elapsed_seconds:.1f} s. Usage statistics cover {age}"
        + (f" (since {report.statistics_since:%Y-%m-%d %H:%M %Z})." if report.statistics_since else "."),
        "",
        f"**Slow queries:** {report.slow_queries.detail}",
        "",
        *(line for warning in report.warnings for line in (f"**Warning:** {warning}", "")),
        *(f"**Verified:** {line}\n" for line in filter(None, [verification_line(report)])),
        "Nothing has been changed. Apply one finding with `dbops review-indexes --apply ID`.",
    ]
    if report.findings:
        lines += ["", "| id | table | evidence | recommendation |", "|---|---|---|---|"]
        lines += [
            f"| `{f.id}`{' (tentative)' if f.tentative else ''} | {f.table or ''} | "
            f"{' '.join(filter(None, [measured_line(f), evidence_line(f)]))} | {f.recommendation} |"
            for f in report.findings
        ]
    for finding in report.findings:
        if not (finding.sql or "query" in finding.evidence or finding.statements):
            continue
        lines += ["", f"## {finding.id}", ""]
        if "query" in finding.evidence:
            lines += ["```sql", str(finding.evidence["query"]), "```"]
        if finding.sql:
            window = "" if finding.online else " (blocks the table: maintenance window)"
            lines += [f"Apply{window}:", "", "```sql", *(f"{s};" for s in finding.sql), "```"]
        if finding.undo_sql:
            lines += ["Undo:", "", "```sql", *(f"{s};" for s in finding.undo_sql), "```"]
        if finding.statements:
            lines += ["", "Statements it serves:", ""]
            lines += [
                f"- `{row['key']}` ({row['calls']} calls): `{row['query']}`" for row in finding.statements
            ]
        if finding.model:
            lines += ["", "Declare it in `models/schema.py` (the table's `__table_args__`):", ""]
            lines += ["```python", finding.model, "```"]
        if finding.alembic:
            lines += ["", "Alembic revision:", "", "```python", finding.alembic, "```"]
    return "\n".join(lines)


def report_text(report: IndexReviewReport) -> list[str]:
    age = human_age(report.statistics_age_days)
    lines = [
        f"{report.database} (PostgreSQL {report.server_version}), usage statistics over {age}",
        f"slow queries: {report.slow_queries.detail}",
        *(f"warning: {warning}" for warning in report.warnings),
        *filter(None, [verification_line(report)]),
    ]
    for finding in report.findings:
        tentative = " (tentative)" if finding.tentative else ""
        lines.append(f"  {finding.id}{tentative}")
        lines.append(f"      {evidence_line(finding)}")
        lines.append(f"      {finding.recommendation}")
        if (measured := measured_line(finding)) is not None:
            lines.append(f"      {measured}")
        if finding.sql:
            prefix = "apply" if finding.online else "apply in a maintenance window"
            lines.append(f"      {prefix}: {'; '.join(finding.sql)}")
        lines += [f"      {line}" for line in workload_text(finding)]
    lines.append(
        f"{len(report.findings)} finding(s) in {report.elapsed_seconds:.2f} s; nothing was changed "
        "(apply one with --apply ID)"
    )
    return lines
