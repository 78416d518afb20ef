"""The index review: read the catalogue and statistics once, then derive every finding from them."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from models.database_url import describe
from models.errors import IndexReviewError
from models.index_review import IndexReviewReport
from models.settings import Settings
from tasks.index_review.bloat import bloat_findings, read_shapes
from tasks.index_review.catalog import (
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
from tasks.index_review.schema_findings import (
    declaration_findings,
    declared_indexes,
    foreign_key_findings,
)
from tasks.index_review.server_versions import statistics_error_hint, unjudged
from tasks.index_review.slow_queries import read_slow_queries
from tasks.index_review.table_findings import maintenance_findings, sequential_scan_findings
from tasks.postgres.engine import check_connection, make_engine

_log = logging.getLogger(__name__)
_SECONDS_PER_DAY = 86_400


def review_indexes(
    url: URL,
    settings: Settings,
    *,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> IndexReviewReport:
    """Review the indexes and tables of the database at *url*. Findings are advice and never raise;
    a statistic that cannot be read does (:class:`IndexReviewError`), since a review without it would
    be silently incomplete."""
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
    except DBAPIError as error:
        message = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        raise IndexReviewError(
            f"could not read the index statistics of {describe(url)}",
            detail=message,
            hint=statistics_error_hint(getattr(error.orig, "sqlstate", None), known_version_num),
        ) from None
    finally:
        engine.dispose()
    age_days = (now - statistics_since).total_seconds() / _SECONDS_PER_DAY if statistics_since else None
    declared = declared_indexes(schema, settings)
    pairs = redundant_pairs(indexes)
    redundant = redundant_findings(pairs, now, settings)
    invalid = invalid_findings(indexes, declared, settings)
    dropped = {finding.index: finding.id for finding in [*redundant, *invalid] if finding.index}
    unused = unused_findings(indexes, foreign_keys, dropped, statistics_since, age_days, settings)
    dropped |= {finding.index: finding.id for finding in unused if finding.index}
    tables_by_name = {table.name: table for table in tables}
    findings = [
        *unused,
        *redundant,
        *invalid,
        *foreign_key_findings(foreign_keys, indexes, tables_by_name, settings),
        *bloat_findings(block_size, index_shapes, table_shapes, settings),
        *sequential_scan_findings(tables, now, settings),
        *slow_findings,
        *declaration_findings(indexes, declared, foreign_keys, dropped, settings),
        *maintenance_findings(tables, now, settings),
    ]
    report = IndexReviewReport(
        database=describe(url),
        server_version=server_version,
        reviewed_at=datetime.now(UTC),
        elapsed_seconds=round(time.monotonic() - started, 3),
        statistics_since=statistics_since,
        statistics_age_days=round(age_days, 3) if age_days is not None else None,
        slow_queries=slow_queries,
        warnings=unjudged(version_num),
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
