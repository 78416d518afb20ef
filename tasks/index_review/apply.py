"""``--apply``: run one finding's SQL, outside a transaction, then review again to prove it worked.

The finding is looked up in a review taken just before, never in an older report, so what is applied
matches the database as it is now. It runs under the migration lock, so an index change never races a
migration, and each statement is bound by the finding's ``lock_timeout``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError

from models.database_url import describe
from models.errors import FindingNotApplicableError, IndexApplyError
from models.index_review import Finding, FindingKind
from models.settings import Settings
from tasks.index_review import statements
from tasks.index_review.runner import review_indexes
from tasks.postgres.engine import make_engine, open_connection
from tasks.postgres.guard import maintenance_guard
from tasks.schema.lock import migration_lock

_log = logging.getLogger(__name__)
#: Findings whose SQL builds a new index: a failed concurrent build leaves an invalid one behind.
_BUILDS_AN_INDEX = {FindingKind.FOREIGN_KEY_WITHOUT_INDEX, FindingKind.MISSING_INDEX}


@dataclass(frozen=True)
class AppliedFinding:
    finding: Finding
    elapsed_seconds: float


def apply_finding(
    url: URL,
    settings: Settings,
    finding_id: str,
    *,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> AppliedFinding:
    log = logger or _log
    finding = _current_finding(url, settings, finding_id)
    started = time.monotonic()
    engine = make_engine(url, settings, purpose="index apply")
    try:
        with (
            maintenance_guard(url, settings, url.database or "", "review-indexes --apply", logger=log),
            migration_lock(engine, settings.migration_lock_timeout_seconds),
            open_connection(engine, autocommit=True) as connection,
        ):
            for statement in finding.sql:
                log.info("%s: %s", finding.id, statement)
                try:
                    connection.exec_driver_sql(statement)
                except DBAPIError as error:
                    message = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
                    leftover = _drop_failed_build(connection, finding)
                    raise IndexApplyError(
                        f"applying {finding.id} to {describe(url)} failed",
                        detail=f"{statement}: {message}" + (f"; {leftover}" if leftover else ""),
                        hint="if a lock timed out, retry when the table is quieter; otherwise fix the "
                        "cause and rerun dbops review-indexes",
                    ) from None
    finally:
        engine.dispose()
    after = review_indexes(url, settings, logger=log)
    if after.finding(finding_id) is not None:
        raise IndexApplyError(
            f"{finding.id} was applied to {describe(url)} but the review still reports it",
            detail="; ".join(finding.sql),
            hint="run dbops review-indexes and compare the database with the statements above",
        )
    return AppliedFinding(finding=finding, elapsed_seconds=round(time.monotonic() - started, 3))


def _current_finding(url: URL, settings: Settings, finding_id: str) -> Finding:
    report = review_indexes(url, settings)
    finding = report.finding(finding_id)
    if finding is None:
        raise FindingNotApplicableError(
            f"the review of {report.database} has no finding {finding_id}",
            detail=f"it has {len(report.findings)} finding(s)",
            hint="run dbops review-indexes to list the current findings; ids look like redundant:ix_name",
        )
    if not finding.sql:
        raise FindingNotApplicableError(
            f"finding {finding_id} is advice: it has no SQL to apply", hint=finding.recommendation
        )
    if not finding.online:
        raise FindingNotApplicableError(
            f"finding {finding_id} blocks the table while it runs, so --apply will not run it",
            hint=f"run it yourself in a maintenance window: {'; '.join(finding.sql)}",
        )
    return finding


def _drop_failed_build(connection: Connection, finding: Finding) -> str | None:
    """Drop the invalid index a failed ``CREATE INDEX CONCURRENTLY`` of this finding left behind, and
    say what became of it; None when nothing was left."""
    if finding.kind not in _BUILDS_AN_INDEX or finding.index is None:
        return None
    schema = connection.execute(
        text("""
            SELECT n.nspname FROM pg_index AS x
            JOIN pg_class AS i ON i.oid = x.indexrelid
            JOIN pg_namespace AS n ON n.oid = i.relnamespace
            WHERE i.relname = :name AND n.nspname = current_schema() AND NOT x.indisvalid
        """),
        {"name": finding.index},
    ).scalar()
    if schema is None:
        return None
    drop = statements.drop_index(str(schema), finding.index)
    try:
        connection.exec_driver_sql(drop)
    except DBAPIError:
        # Whatever blocked the build (a long transaction, usually) blocks the drop as well.
        return (
            f"the half-built index {finding.index} is left invalid: run {drop} once the blocking "
            "transaction ends"
        )
    return f"the half-built index {finding.index} was dropped again"
