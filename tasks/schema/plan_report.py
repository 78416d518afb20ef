"""A migration plan as people read it: a table on a terminal, markdown for a pull request.

Pure: no I/O.
"""

from __future__ import annotations

from models.plan import MigrationPlan, StatementTrace


def _locks(statement: StatementTrace) -> str:
    return ", ".join(
        f"{lock.mode.removesuffix('Lock')} {lock.relation} {lock.held_seconds:.2f}s"
        for lock in statement.locks
    )


def _blocked(statement: StatementTrace) -> str:
    return ", ".join(
        f"{table} max {blocked.max:.2f}s" for table, blocked in statement.probe_blocked_seconds.items()
    )


def _sql(statement: StatementTrace, width: int = 60) -> str:
    line = " ".join(statement.sql.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def text(plan: MigrationPlan) -> str:
    """The plan as lines for a terminal."""
    span = f"{plan.from_revision or 'base'} -> {plan.to_revision or 'base'}"
    lines = [
        f"{plan.database}: {span}, measured on a copy of backup {plan.backup}: {plan.verdict.upper()}",
        f"limits: blocking locks {plan.max_lock_seconds:g} s on tables with rows, "
        f"rewrites {plan.max_rewrite_mb:g} MB",
    ]
    if not plan.revisions:
        lines.append("nothing to migrate: the backup is at the code's head")
    for revision in plan.revisions:
        lines.append(f"revision {revision.revision} ({revision.seconds:.2f} s)")
        for statement in revision.statements:
            lines.append(f"  {statement.seconds:>7.2f}s  {_sql(statement)}")
            details = [
                f"rows {statement.rows}" if statement.rows is not None else "",
                f"WAL {statement.wal_bytes / 1e6:.1f} MB" if statement.wal_bytes else "",
                f"rewrites {', '.join(statement.rewrites)}" if statement.rewrites else "",
                f"locks {_locks(statement)}" if statement.locks else "",
                f"blocked {_blocked(statement)}" if statement.probe_blocked_seconds else "",
            ]
            lines += [f"            {detail}" for detail in details if detail]
            lines += [f"            lint {finding}" for finding in statement.lint]
        lines += [f"  FAILS: {failure}" for failure in revision.failures]
        lines += [f"  accepted: {accepted}" for accepted in revision.accepted]
    return "\n".join(lines)


def markdown(plan: MigrationPlan) -> str:
    """The plan as markdown, fit to paste into a pull-request comment."""
    verdict = "✅ pass" if plan.verdict == "pass" else "❌ fail"
    out = [
        f"### Migration plan for `{plan.database}`: {verdict}",
        "",
        f"`{plan.from_revision or 'base'}` → `{plan.to_revision or 'base'}`, measured on a restored copy of "
        f"backup `{plan.backup}`. Limits: blocking locks {plan.max_lock_seconds:g} s on tables with rows, "
        f"rewrites {plan.max_rewrite_mb:g} MB.",
        "",
    ]
    for revision in plan.revisions:
        out += [f"#### `{revision.revision}` ({revision.seconds:.2f} s)", ""]
        out += [
            "| s | statement | rows | WAL MB | rewrites | locks (held) | probes blocked (max) |",
            "|---|---|---|---|---|---|---|",
        ]
        for statement in revision.statements:
            cells = [
                f"{statement.seconds:.2f}",
                f"`{_sql(statement).replace('|', '¦')}`",
                "" if statement.rows is None else str(statement.rows),
                f"{statement.wal_bytes / 1e6:.1f}",
                ", ".join(statement.rewrites),
                _locks(statement),
                _blocked(statement),
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        out += [f"- **fails:** {failure}" for failure in revision.failures]
        out += [f"- accepted: {accepted}" for accepted in revision.accepted]
        out.append("")
    return "\n".join(out)
