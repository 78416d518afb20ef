"""The index review: read the catalogue and statistics once, then derive every finding from them."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from models.database_url import describe
from models.errors import IndexReviewError
from models.index_review import IndexReviewReport
from models.settings import Settings
from tasks.index_review.bloat import bloat_findings, read_shapes
from tasks.index_review.catalog import (
    IndexInfo,
    read_foreign_keys,
    read_indexes,
    read_server_version_num,
    read_statistics_since,
    read_tables,
)
from tasks.index_review.index_findings import (
    invalid_findings,
    redundant_findings,
    redundant_pairs,
    unused_findings,
)
from tasks.index_review.leftovers import builds_by_name, leftover_origin
from tasks.index_review.schema_findings import (
    declaration_findings,
    declared_indexes,
    foreign_key_findings,
)
from tasks.index_review.server_versions import statistics_error_hint, unjudged
from tasks.index_review.slow_queries import read_slow_queries
from tasks.index_review.table_findings import maintenance_findings, sequential_scan_findings
from tasks.index_review.workload.advice import WorkloadAdvice, advise_indexes
from tasks.postgres.engine import check_connection, make_engine
from tasks.postgres.locks import LockHolder
from tasks.schema.lock import find_holder

_log = logging.getLogger(__name__)
_SECONDS_PER_DAY = 86_400


def review_indexes(
    url: URL,
    settings: Settings,
    *,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    queries_file: Path | None = None,
    advice: WorkloadAdvice | None = None,
) -> IndexReviewReport:
    """Review the indexes and tables of the database at *url*. Findings are advice and never raise;
    a statistic that cannot be read does (:class:`IndexReviewError`), since a review without it would
    be silently incomplete. The workload's statements (and *queries_file*'s) get index advice."""
    log = logger or _log
    started = time.monotonic()
    engine = make_engine(
        url, settings, purpose="index review", server_settings={"default_transaction_read_only": "on"}
    )
    check_connection(engine)
    known_version_num: int | None = None  # for the hint, should a later read fail
    try:
        # One transaction: the cumulative statistics are read as one consistent snapshot.
        with engine.connect() as connection:
            version_num = known_version_num = read_server_version_num(connection)
            server_version = str(connection.execute(text("SHOW server_version")).scalar_one())
            connection.execute(text("SET LOCAL stats_fetch_consistency = snapshot"))
            statistics_since, now = read_statistics_since(connection)
            indexes = read_indexes(connection, version_num)
            tables = read_tables(connection, version_num)
            foreign_keys = read_foreign_keys(connection)
            block_size, index_shapes, table_shapes = read_shapes(connection)
            slow_queries, slow_findings = read_slow_queries(connection, settings)
            schema = str(connection.execute(text("SELECT current_schema()")).scalar_one())
            live_run = find_holder(connection)
    except DBAPIError as error:
        message = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        raise IndexReviewError(
            f"could not read the index statistics of {describe(url)}",
            detail=message,
            hint=statistics_error_hint(getattr(error.orig, "sqlstate", None), known_version_num),
        ) from None
    finally:
        engine.dispose()
    if advice is None:  # --verify reads it first, for the parameter uses and plans it measures with
        advice = advise_indexes(url, settings, queries_file=queries_file, logger=log)
    age_days = (now - statistics_since).total_seconds() / _SECONDS_PER_DAY if statistics_since else None
    declared = declared_indexes(schema, settings)
    tables_by_name = {table.name: table for table in tables}
    foreign_key = foreign_key_findings(foreign_keys, indexes, tables_by_name, settings)
    builds = builds_by_name(foreign_key, declared)
    leftovers = {i.name for i in indexes if not i.is_valid and leftover_origin(i.name, builds)}
    indexes, in_flight = _in_flight(indexes, leftovers, live_run)
    pairs = redundant_pairs(indexes)
    redundant = redundant_findings(pairs, now, settings)
    invalid = invalid_findings(indexes, declared, settings, builds)
    dropped = {finding.index: finding.id for finding in [*redundant, *invalid] if finding.index}
    unused = unused_findings(indexes, foreign_keys, dropped, statistics_since, age_days, settings)
    dropped |= {finding.index: finding.id for finding in unused if finding.index}
    findings = [
        *unused,
        *redundant,
        *invalid,
        *foreign_key,
        *bloat_findings(block_size, index_shapes, table_shapes, settings),
        *sequential_scan_findings(tables, now, settings),
        *slow_findings,
        *advice.findings,
        *declaration_findings(indexes, declared, foreign_keys, dropped, settings, leftovers),
        *maintenance_findings(tables, now, settings),
    ]
    warnings = [*unjudged(version_num), *advice.warnings]
    if in_flight and live_run is not None:
        warnings.append(
            f"a dbops run holds the migration lock ({live_run.describe()}): the invalid indexes it may "
            f"still be building ({', '.join(in_flight)}) are judged once it ends"
        )
    report = IndexReviewReport(
        database=describe(url),
        server_version=server_version,
        reviewed_at=datetime.now(UTC),
        elapsed_seconds=round(time.monotonic() - started, 3),
        statistics_since=statistics_since,
        statistics_age_days=round(age_days, 3) if age_days is not None else None,
        slow_queries=slow_queries,
        warnings=warnings,
        findings=findings,
    )
    log.info(
        "index review of %s: %d finding(s) %s in %.2f s",
        report.database,
        len(findings),
        report.count_by_kind(),
        report.elapsed_seconds,
    )
    if not slow_queries.available:
        log.info("slow queries: %s", slow_queries.detail)
    for warning in report.warnings:
        log.warning("%s", warning)
    return report


def _in_flight(
    indexes: list[IndexInfo], leftovers: set[str], live_run: LockHolder | None
) -> tuple[list[IndexInfo], list[str]]:
    """While a run holds the migration lock, the invalid indexes named like its builds may be in its
    hands between two steps: they count as building (and the review does not judge them) until the
    lock goes, which it does only with the run's building session."""
    if live_run is None:
        return indexes, []
    in_flight = [index.name for index in indexes if index.name in leftovers and not index.building]
    return [
        replace(index, building=True) if index.name in in_flight else index for index in indexes
    ], in_flight
