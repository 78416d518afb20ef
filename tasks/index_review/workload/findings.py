"""Workload findings: each advised index with the SQL that builds it online, the Alembic revision and
the model declaration that make it part of the schema (so the next review does not call it
undeclared), and the statements it serves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from models.index_review import Finding, FindingKind
from models.settings import Settings
from models.workload import IndexCandidate, WorkloadStatement
from tasks.index_review import statements
from tasks.index_review.workload.costing import candidate_sql

_QUERY_TEXT_LIMIT = 500


def alembic_body(candidate: IndexCandidate) -> str:
    """The revision's ``upgrade``/``downgrade``: a concurrent build cannot run in a transaction, hence
    the autocommit block."""
    where = f", postgresql_where=sa.text({candidate.where!r})" if candidate.where else ""
    return "\n".join(
        [
            "def upgrade() -> None:",
            "    with op.get_context().autocommit_block():",
            "        op.create_index(",
            f"            {candidate.name!r}, {candidate.table!r}, {list(candidate.columns)!r},",
            f"            postgresql_concurrently=True, if_not_exists=True{where},",
            "        )",
            "",
            "",
            "def downgrade() -> None:",
            "    with op.get_context().autocommit_block():",
            "        op.drop_index(",
            f"            {candidate.name!r}, table_name={candidate.table!r}, postgresql_concurrently=True,"
            " if_exists=True",
            "        )",
        ]
    )


def model_declaration(candidate: IndexCandidate) -> str:
    """The line for the table's ``__table_args__`` in ``models/schema.py``."""
    parts = [repr(candidate.name), *(repr(column) for column in candidate.columns)]
    if candidate.where:
        parts.append(f"postgresql_where=text({candidate.where!r})")
    return f"Index({', '.join(parts)}),"


def _statement_rows(
    candidate: IndexCandidate, workload: Mapping[str, WorkloadStatement]
) -> list[dict[str, object]]:
    costs = {cost.statement: cost for cost in candidate.costs}
    keys = list(dict.fromkeys([*candidate.statements, *(cost.statement for cost in candidate.costs)]))
    rows: list[dict[str, object]] = []
    for key in keys:
        statement = workload.get(key)
        if statement is None:
            continue
        row: dict[str, object] = {
            "key": key,
            "query": " ".join(statement.query.split())[:_QUERY_TEXT_LIMIT],
            "calls": statement.calls,
        }
        if key in costs:
            row |= {"cost_before": round(costs[key].before, 2), "cost_after": round(costs[key].after, 2)}
        if key in costs and costs[key].saved <= 0 and key not in candidate.statements:
            continue  # on the same table, but the index does nothing for it
        rows.append(row)
    return rows


def workload_finding(
    candidate: IndexCandidate, workload: Mapping[str, WorkloadStatement], settings: Settings
) -> Finding:
    """The finding advising *candidate*; costed when its ``costs`` are known."""
    rows = _statement_rows(candidate, workload)
    listed = {row["key"] for row in rows}
    costs = [cost for cost in candidate.costs if cost.statement in listed]
    costed = bool(candidate.costs)
    before = sum(cost.before * cost.calls for cost in costs) if costed else None
    after = sum(cost.after * cost.calls for cost in costs) if costed else None
    columns = ", ".join(candidate.columns)
    subject = f"({columns})" + (f" WHERE {candidate.where}" if candidate.where else "")
    served = f"{len(rows)} statement(s) ({sum(int(str(row['calls'])) for row in rows):,} calls)"
    if costed and before is not None and after is not None:
        recommendation = (
            f"index {candidate.table} {subject}: the planner estimates {served} at {after:,.0f} instead "
            f"of {before:,.0f} cost units (calls times cost), less {candidate.write_overhead:,.0f} for "
            "the writes; build it, then add the revision and the model declaration"
        )
    else:
        recommendation = (
            f"index {candidate.table} {subject} for {served}: not costed (no hypopg); measure it with "
            "--verify, or build it and compare EXPLAIN (ANALYZE, BUFFERS) before and after"
        )
    evidence: dict[str, object] = {
        "columns": list(candidate.columns),
        "where": candidate.where,
        "statements": len(rows),
        "calls": sum(int(str(row["calls"])) for row in rows),
    }
    if costed:
        evidence |= {
            "cost_before": round(before or 0.0, 1),
            "cost_after": round(after or 0.0, 1),
            "write_overhead": round(candidate.write_overhead, 1),
            "score": round(candidate.score, 1),
        }
    return Finding.about(
        FindingKind.WORKLOAD_INDEX,
        candidate.name,
        table=candidate.table,
        index=candidate.name,
        evidence=evidence,
        recommendation=recommendation,
        sql=statements.bounded(settings, candidate_sql(candidate)),
        undo_sql=statements.bounded(settings, statements.drop_index(candidate.schema_name, candidate.name)),
        columns=list(candidate.columns),
        where=candidate.where,
        statements=rows,
        estimated_cost_before=round(before, 2) if before is not None else None,
        estimated_cost_after=round(after, 2) if after is not None else None,
        alembic=alembic_body(candidate),
        model=model_declaration(candidate),
    )


def workload_findings(
    candidates: Sequence[IndexCandidate], workload: Sequence[WorkloadStatement], settings: Settings
) -> list[Finding]:
    by_key = {statement.key: statement for statement in workload}
    return [workload_finding(candidate, by_key, settings) for candidate in candidates]


def candidate_from_finding(finding: Finding, schema: str) -> IndexCandidate:
    """The candidate a workload finding advises, back from the report (for ``--verify``)."""
    if finding.kind is not FindingKind.WORKLOAD_INDEX or not finding.columns or finding.table is None:
        raise ValueError(f"{finding.id} is not a workload index finding")
    return IndexCandidate(
        schema_name=schema,
        table=finding.table,
        columns=tuple(finding.columns),
        where=finding.where,
        statements=tuple(str(row["key"]) for row in finding.statements or ()),
    )
