"""The summary an operator reads before approving a restore, for a terminal and for the Prefect UI.

An on-call operator under stress should not have to work out what "latest" turned into: the summary
names the backup, its age and source, how its last rehearsal went, and, table by table, how the copy
differs from what is live now. Pure: the caller counts; this module only compares and renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from models.rehearsal import RestoreMode, RestoreSummary, TableComparison
from models.schema import MIGRATION_BOOKKEEPING_TABLES

#: Bookkeeping the summary's revision line already covers.
_NOT_DATA = frozenset({"alembic_version"}) | MIGRATION_BOOKKEEPING_TABLES


def compare_tables(copy: Mapping[str, int], live: Mapping[str, int]) -> list[TableComparison]:
    """Every data table of either side, by name."""
    return [
        TableComparison(table=table, copy_rows=copy.get(table), live_rows=live.get(table))
        for table in sorted((copy.keys() | live.keys()) - _NOT_DATA)
    ]


def age(since: datetime, now: datetime) -> str:
    """``42 min``, ``5.2 h`` or ``3.1 days``: how old, at a glance."""
    seconds = max(0.0, (now - since).total_seconds())
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def rehearsal_line(summary: RestoreSummary, now: datetime) -> str:
    record = summary.rehearsal
    if record is None:
        return "never rehearsed"
    when = f"{age(record.rehearsed_at, now)} ago"
    if record.passed:
        return f"passed {when}, measured recovery time {record.timings.total:.1f} s"
    return f"FAILED {when}: {record.failure}"


def _megabytes(size: int | None) -> str:
    return "unknown" if size is None else f"{size / 1e6:,.1f} MB"


def _signed(value: int | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:+,}" if value else "0"


def _rows(value: int | None) -> str:
    return "absent" if value is None else f"{value:,}"


def _facts(summary: RestoreSummary, now: datetime) -> list[tuple[str, str]]:
    if summary.mode is RestoreMode.SWAP:
        what = f"swap: {summary.copy_database} takes the name {summary.target}; the live one is set aside"
    else:
        what = f"in place: {summary.target} is dropped, then rebuilt from the backup"
    taken = summary.taken_at.isoformat(timespec="seconds")
    return [
        ("Target", f"{summary.target} on {summary.server}"),
        ("Mode", what),
        ("Backup", f"{summary.backup_id}, taken {taken} ({age(summary.taken_at, now)} ago)"),
        ("Source", f"{summary.source}, revision {summary.revision or 'none'}"),
        ("Rehearsal", rehearsal_line(summary, now)),
        ("Size", f"copy {_megabytes(summary.copy_bytes)}, live {_megabytes(summary.live_bytes)}"),
    ]


def markdown(summary: RestoreSummary, now: datetime) -> str:
    """The paused run's description in the Prefect UI: the rows first, where a wrong choice shows."""
    lines = [f"## Restore {summary.target} from backup {summary.backup_id}?", ""]
    lines += [f"- **{name}:** {value}" for name, value in _facts(summary, now)]
    lines += ["", f"**Rows per table** (copy counted in {summary.counted_in})", ""]
    lines += ["| Table | Copy | Live | Difference |", "|---|---:|---:|---:|"]
    lines += [
        f"| {t.table} | {_rows(t.copy_rows)} | {_rows(t.live_rows)} | {_signed(t.difference)} |"
        for t in summary.tables
    ]
    lines += [
        "",
        "Turn **approve** on to replace the live database; leave it off to drop the copy and leave "
        f"{summary.target} untouched.",
    ]
    return "\n".join(lines)


def terminal_lines(summary: RestoreSummary, now: datetime) -> list[str]:
    """The same summary for ``dbops restore`` on a terminal."""
    facts = _facts(summary, now)
    width = max(len(name) for name, _ in facts)
    lines = [f"  {name:<{width}}  {value}" for name, value in facts]
    lines.append(f"  rows per table (copy counted in {summary.counted_in}):")
    name_width = max([len("table"), *(len(t.table) for t in summary.tables)])
    lines.append(f"    {'table':<{name_width}}  {'copy':>12}  {'live':>12}  {'difference':>11}")
    lines += [
        f"    {t.table:<{name_width}}  {_rows(t.copy_rows):>12}  {_rows(t.live_rows):>12}  "
        f"{_signed(t.difference):>11}"
        for t in summary.tables
    ]
    return lines
