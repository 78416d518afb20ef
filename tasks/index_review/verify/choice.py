"""Without hypopg, the candidates are costed on the copy with their indexes built for real.

The advice's greedy choice (:func:`~tasks.index_review.workload.costing.choose_candidates`) takes any
way of making an index present; on the copy that is a plain ``CREATE INDEX``, which the planner sees
as it would see the index on production. The whole choice runs in one transaction that is rolled back,
so every index it built is gone with it and the measuring starts from the copy as restored. Write
overhead is left out of this choice: the copy has no write statistics, and the insert batch of
:mod:`.writes` measures that cost instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection

from models.settings import Settings
from models.workload import IndexCandidate, WorkloadStatement
from tasks.index_review import statements
from tasks.index_review.catalog import read_server_version_num
from tasks.index_review.workload.costing import candidate_sql, choose_candidates
from tasks.index_review.workload.plans import plan_settings
from tasks.postgres.engine import make_engine


def built_indexes(connection: Connection, candidate: IndexCandidate) -> Callable[[], None]:
    """The candidate's index built for real (inside the caller's transaction); the function returned
    drops it."""
    connection.execute(text(candidate_sql(candidate, concurrently=False)))
    index = f"{statements.quote(candidate.schema_name)}.{statements.quote(candidate.name)}"

    def remove() -> None:
        connection.execute(text(f"DROP INDEX {index}"))

    return remove


def choose_on_copy(
    url: URL,
    settings: Settings,
    workload: Sequence[WorkloadStatement],
    candidates: Sequence[IndexCandidate],
    tables: Mapping[str, frozenset[tuple[str, str]]],
) -> tuple[list[IndexCandidate], list[tuple[IndexCandidate, str]]]:
    """(chosen, rejected with why) among *candidates*, costed with their indexes built on the copy at
    *url*."""
    engine = make_engine(url, settings, purpose="index verification")
    try:
        with engine.connect() as connection:
            try:
                plan_settings(connection, settings.review_verify_timeout_seconds)
                return choose_candidates(
                    connection,
                    read_server_version_num(connection),
                    workload,
                    candidates,
                    built_indexes,
                    lambda candidate: 0.0,
                    tables=tables,
                )
            finally:
                connection.rollback()
    finally:
        engine.dispose()
