"""Candidates costed by the planner with each index present, and a set chosen greedily from them.

The index that is "present" comes from an :data:`IndexFactory`: it makes the index on the connection
and returns the function that takes it away again. The review's factory is hypopg's
(:func:`hypothetical_indexes`): a hypothetical index lives only in the backend's memory, is seen only by
plain ``EXPLAIN`` in that session, and ``hypopg_create_index`` writes nothing, so it works in the
review's read-only transaction. Another factory (``CREATE INDEX`` on a scratch copy, say) costs the
same candidates with indexes built for real.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from models.workload import IndexCandidate, StatementCost, WorkloadStatement
from tasks.index_review import statements
from tasks.index_review.workload.plans import plan_cost

_log = logging.getLogger(__name__)

#: Makes the candidate's index on the connection; the function it returns removes it.
IndexFactory = Callable[[Connection, IndexCandidate], Callable[[], None]]
#: The candidate's write overhead, in the score's units (see :mod:`.overhead`).
OverheadEstimate = Callable[[IndexCandidate], float]
#: (schema, table) of every relation each statement's plan scans, by statement key.
TablesByStatement = Mapping[str, frozenset[tuple[str, str]]]

HYPOPG = text("""
    SELECT (SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace
            WHERE e.extname = 'hypopg') AS schema,
           EXISTS (SELECT FROM pg_available_extensions WHERE name = 'hypopg') AS available,
           current_setting('server_version_num')::int / 10000 AS major
""")


def hypopg_schema(connection: Connection) -> tuple[str | None, str | None]:
    """(the schema hypopg is installed in, None) or (None, why the candidates cannot be costed)."""
    row = connection.execute(HYPOPG).one()
    if row.schema is not None:
        return str(row.schema), None
    enable = (
        "CREATE EXTENSION hypopg in this database"
        if row.available
        else f"install hypopg on the server (Debian: postgresql-{row.major}-hypopg), then CREATE EXTENSION "
        "hypopg in this database"
    )
    return None, (
        f"hypopg is not installed, so the workload's index candidates are listed without estimated costs; "
        f"to cost them: {enable}. `--verify` measures them by building them on a restored copy"
    )


def candidate_sql(candidate: IndexCandidate, *, concurrently: bool = True) -> str:
    """The candidate's ``CREATE INDEX``."""
    return statements.create_index(
        candidate.schema_name,
        candidate.table,
        candidate.name,
        list(candidate.columns),
        where=candidate.where,
        concurrently=concurrently,
    )


def hypothetical_indexes(schema: str) -> IndexFactory:
    """hypopg's factory: the candidate as a hypothetical index, dropped again by the returned function."""
    create = text(f"SELECT indexrelid FROM {statements.quote(schema)}.hypopg_create_index(:sql)")
    drop = text(f"SELECT {statements.quote(schema)}.hypopg_drop_index(:oid)")

    def make(connection: Connection, candidate: IndexCandidate) -> Callable[[], None]:
        oid = connection.execute(create, {"sql": candidate_sql(candidate, concurrently=False)}).scalar_one()

        def remove() -> None:
            connection.execute(drop, {"oid": oid})

        return remove

    return make


def _served(
    candidate: IndexCandidate, workload: Sequence[WorkloadStatement], tables: TablesByStatement | None
) -> list[WorkloadStatement]:
    """The statements whose cost the candidate may change: all that scan its table when the plans'
    tables are known, else the ones it was made for."""
    table = (candidate.schema_name, candidate.table)
    if tables is None:
        return [statement for statement in workload if statement.key in candidate.statements]
    return [statement for statement in workload if table in tables.get(statement.key, frozenset())]


def cost_candidates(
    connection: Connection,
    version_num: int,
    workload: Sequence[WorkloadStatement],
    candidates: Sequence[IndexCandidate],
    make_index: IndexFactory,
    *,
    tables: TablesByStatement | None = None,
) -> list[IndexCandidate]:
    """Each candidate with its ``costs``: every statement it may serve, planned without it (as the
    connection stands) and with it (made by *make_index*, then removed). A statement that cannot be
    planned is left out of the costs, and a candidate whose index cannot be made has none."""
    before: dict[str, float | None] = {}
    costed = []
    for candidate in candidates:
        served = _served(candidate, workload, tables)
        for statement in served:
            if statement.key not in before:
                before[statement.key] = plan_cost(connection, statement.key, statement.query, version_num)
        try:
            with connection.begin_nested():  # an index that cannot be made leaves the rest costable
                remove = make_index(connection, candidate)
        except DBAPIError as error:
            reason = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
            _log.info("index candidate %s cannot be costed: %s", candidate.name, reason)
            costed.append(candidate)
            continue
        try:
            after = {s.key: plan_cost(connection, s.key, s.query, version_num) for s in served}
        finally:
            remove()
        costs = tuple(
            StatementCost(statement=s.key, calls=s.calls, before=cost, after=after_cost)
            for s in served
            if (cost := before[s.key]) is not None and (after_cost := after[s.key]) is not None
        )
        costed.append(candidate.model_copy(update={"costs": costs}))
    return costed


def choose_candidates(
    connection: Connection,
    version_num: int,
    workload: Sequence[WorkloadStatement],
    candidates: Sequence[IndexCandidate],
    make_index: IndexFactory,
    overhead: OverheadEstimate,
    *,
    tables: TablesByStatement | None = None,
) -> tuple[list[IndexCandidate], list[tuple[IndexCandidate, str]]]:
    """(chosen, rejected with why): the best-scoring candidate first, then the rest re-costed with the
    chosen ones present, until none saves more than it costs the writes. Each chosen candidate keeps
    the costs it was chosen on: its saving beyond the ones chosen before it. The indexes made for the
    choice are removed before it returns."""

    def costed(among: Sequence[IndexCandidate]) -> list[IndexCandidate]:
        found = cost_candidates(connection, version_num, workload, among, make_index, tables=tables)
        return [c.model_copy(update={"write_overhead": overhead(c)}) for c in found]

    remaining = costed(candidates)
    chosen: list[IndexCandidate] = []
    rejected: list[tuple[IndexCandidate, str]] = []
    removals: list[Callable[[], None]] = []
    try:
        while remaining:
            kept = []
            for candidate in remaining:
                saved = sum(cost.saved for cost in candidate.costs)
                if not candidate.costs:
                    rejected.append((candidate, "it could not be costed (see the log)"))
                elif saved <= 0:
                    rejected.append((candidate, _no_saving(chosen)))
                elif candidate.score <= 0:
                    rejected.append(
                        (
                            candidate,
                            f"saves {saved:,.0f} but costs the writes {candidate.write_overhead:,.0f}",
                        )
                    )
                else:
                    kept.append(candidate)
            if not kept:
                break
            best = max(kept, key=lambda candidate: candidate.score)
            chosen.append(best)
            removals.append(make_index(connection, best))
            rest = [candidate for candidate in kept if candidate is not best]
            remaining = costed(rest)
    finally:
        for remove in reversed(removals):
            remove()
    for candidate, reason in rejected:
        _log.info("index candidate %s not recommended: %s", candidate.name, reason)
    return chosen, rejected


def _no_saving(chosen: Sequence[IndexCandidate]) -> str:
    if chosen:
        return f"the planner would not use it beside {', '.join(c.name for c in chosen)}"
    return "the planner would not use it"
