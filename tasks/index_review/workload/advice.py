"""The workload advice as one call: read the workload, plan it, derive candidates, cost and choose them
(where hypopg is installed), and turn the chosen ones into findings."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError

from models.index_review import Finding
from models.settings import Settings
from models.workload import IndexCandidate, ParameterUse, WorkloadStatement
from tasks.index_review.catalog import read_indexes, read_server_version_num
from tasks.index_review.workload.candidates import TableStatistics, build_candidates, existing_indexes
from tasks.index_review.workload.costing import choose_candidates, hypopg_schema, hypothetical_indexes
from tasks.index_review.workload.findings import workload_findings
from tasks.index_review.workload.needs import parameter_uses, scan_needs, tables
from tasks.index_review.workload.overhead import TableWrites, write_overhead
from tasks.index_review.workload.plans import plan_settings, try_generic_plan
from tasks.index_review.workload.source import (
    PRIVILEGE_HINT,
    read_queries_file,
    read_statistics_workload,
    read_updated_columns,
)
from tasks.index_review.workload.statistics import read_table_statistics, read_table_writes
from tasks.postgres.engine import make_engine

_log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


@dataclass
class WorkloadAdvice:
    """What the advice found: the workload, its plans' parameter uses, the advised candidates (costed
    when hypopg could), the ones rejected with why, their findings and what limited the advice."""

    workload: list[WorkloadStatement] = field(default_factory=list)
    plans: dict[str, Any] = field(default_factory=dict)
    parameter_uses: dict[str, list[ParameterUse]] = field(default_factory=dict)
    candidates: list[IndexCandidate] = field(default_factory=list)
    rejected: list[tuple[IndexCandidate, str]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    costed: bool = False


def advise_indexes(
    url: URL, settings: Settings, *, queries_file: Path | None = None, logger: Logger | None = None
) -> WorkloadAdvice:
    """Advise indexes for the workload of the database at *url*, on a read-only connection of its own.

    The advice never fails the review: a statement that cannot be planned is skipped, and an error
    reading what the advice needs becomes a warning. A bad ``--queries`` file is an error
    (:class:`~models.errors.QueriesFileError`), raised before connecting.
    """
    log = logger or _log
    from_file = read_queries_file(queries_file) if queries_file is not None else []
    engine = make_engine(
        url, settings, purpose="index advice", server_settings={"default_transaction_read_only": "on"}
    )
    try:
        with engine.connect() as connection:
            return _advise(connection, settings, from_file, log)
    except DBAPIError as error:
        message = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        return WorkloadAdvice(warnings=[f"the workload advice could not be completed: {message}"])
    finally:
        engine.dispose()


def _advise(
    connection: Connection, settings: Settings, from_file: list[WorkloadStatement], log: Logger
) -> WorkloadAdvice:
    version_num = read_server_version_num(connection)
    found = read_statistics_workload(connection, settings)
    advice = WorkloadAdvice(workload=[*found.statements, *from_file])
    if found.hidden:
        advice.warnings.append(f"{found.hidden} statement(s): {PRIVILEGE_HINT}")
    if not advice.workload:
        return advice
    plan_settings(connection, settings.review_plan_timeout_seconds)
    for statement in advice.workload:
        plan = try_generic_plan(connection, statement.key, statement.query, version_num)
        if plan is not None:
            advice.plans[statement.key] = plan
            advice.parameter_uses[statement.key] = parameter_uses(plan)
    unplanned = len(advice.workload) - len(advice.plans)
    if unplanned:
        advice.warnings.append(f"{unplanned} workload statement(s) could not be planned and were skipped")
    needs = [need for key, plan in advice.plans.items() for need in scan_needs(key, plan)]
    statistics = read_table_statistics(connection)
    existing = existing_indexes(read_indexes(connection, version_num))
    candidates = build_candidates(needs, statistics, existing, min_rows=settings.review_seq_scan_min_rows)
    planned = [statement for statement in advice.workload if statement.key in advice.plans]
    schema, why_not = hypopg_schema(connection)
    if schema is None or not candidates:
        if why_not and candidates:
            advice.warnings.append(why_not)
        advice.candidates = candidates
    else:
        window = found.window_seconds
        writes = read_table_writes(connection)
        updated = read_updated_columns(connection, found.schema) if found.schema else {}
        advice.candidates, advice.rejected = choose_candidates(
            connection,
            version_num,
            planned,
            candidates,
            hypothetical_indexes(schema),
            lambda candidate: _overhead(candidate, statistics, writes, window, updated),
            tables={key: tables(plan) for key, plan in advice.plans.items()},
        )
        advice.costed = True
    advice.findings = workload_findings(advice.candidates, advice.workload, settings)
    log.info(
        "workload advice: %d statement(s), %d planned, %d index(es) advised%s",
        len(advice.workload),
        len(advice.plans),
        len(advice.findings),
        f", {len(advice.rejected)} not worth it" if advice.rejected else "",
    )
    return advice


def _overhead(
    candidate: IndexCandidate,
    statistics: Mapping[tuple[str, str], TableStatistics],
    writes: Mapping[tuple[str, str], TableWrites],
    window_seconds: float | None,
    updated: Mapping[str, frozenset[str] | None],
) -> float:
    """The candidate's write overhead over the window the calls were counted in; a file's statements,
    whose calls have no window, are weighed against the table counters' own."""
    key = (candidate.schema_name, candidate.table)
    table_writes = writes.get(key)
    if table_writes is None:
        return 0.0
    columns = statistics[key].columns if key in statistics else {}
    window = window_seconds if window_seconds is not None else table_writes.seconds
    return write_overhead(candidate.columns, columns, table_writes, window, updated.get(candidate.table))
