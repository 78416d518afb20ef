"""``--apply``: run one finding's SQL, outside a transaction, then review again to prove it worked.

The finding is looked up in a review taken just before, never in an older report, so what is applied
matches the database as it is now. Each statement is bound by the finding's ``lock_timeout``.

The build runs under the maintenance guard and holds the migration lock on its own session, so no
migration and no second ``--apply`` run beside it, and the lock lasts exactly as long as the backend
that builds. That backend checks every second whether its client is still there
(``client_connection_check_interval``): a killed client's build is cancelled by the server instead of
building on, unlocked, beside the next job. Whatever ends a statement early (an error, a lock
timeout, Ctrl-C), the invalid index it left is dropped before the error or the interrupt goes on
(:mod:`tasks.index_review.cleanup`); what a dead run could not drop, the next ``--apply`` does first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError

from models.database_url import describe
from models.errors import FindingNotApplicableError, IndexApplyError
from models.index_review import Finding, FindingKind, IndexReviewReport
from models.settings import Settings
from tasks.index_review.cleanup import clear_failed_build, drop_half_built, interrupts_deferred
from tasks.index_review.runner import review_indexes
from tasks.postgres.engine import make_engine, open_connection
from tasks.postgres.guard import maintenance_guard
from tasks.schema.lock import migration_lock_on

_log = logging.getLogger(__name__)
#: The building session: the server cancels its statement within a second of losing the client, and
#: never ends it for idling (the session holds the migration lock).
BUILD_SESSION_SETTINGS = {"client_connection_check_interval": "1000", "idle_session_timeout": "0"}


@dataclass(frozen=True)
class AppliedFinding:
    finding: Finding
    elapsed_seconds: float
    cleared: list[str] = field(default_factory=list)  # what became of the leftovers of dead runs


def apply_finding(
    url: URL,
    settings: Settings,
    finding_id: str,
    *,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    queries_file: Path | None = None,
) -> AppliedFinding:
    """*queries_file*: the ``--queries`` file of the review whose workload finding is applied."""
    log = logger or _log
    report = review_indexes(url, settings, queries_file=queries_file)
    finding = _current_finding(report, finding_id)
    started = time.monotonic()
    engine = make_engine(url, settings, purpose="index apply", server_settings=BUILD_SESSION_SETTINGS)
    try:
        with (
            maintenance_guard(url, settings, url.database or "", "review-indexes --apply", logger=log),
            open_connection(engine, autocommit=True) as connection,
            migration_lock_on(connection, settings.migration_lock_timeout_seconds),
        ):
            cleared = _drop_leftovers(connection, settings, report, log)
            build_pid = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
            for statement in finding.sql:
                log.info("%s: %s", finding.id, statement)
                _run(connection, build_pid, statement, finding, url, settings, log)
    finally:
        engine.dispose()
    after = review_indexes(url, settings, logger=log, queries_file=queries_file)
    if after.finding(finding_id) is not None:
        raise IndexApplyError(
            f"{finding.id} was applied to {describe(url)} but the review still reports it",
            detail="; ".join(finding.sql),
            hint="run dbops review-indexes and compare the database with the statements above",
        )
    return AppliedFinding(
        finding=finding, elapsed_seconds=round(time.monotonic() - started, 3), cleared=cleared
    )


def _run(
    connection: Connection,
    build_pid: int,
    statement: str,
    finding: Finding,
    url: URL,
    settings: Settings,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> None:
    """Run *statement*; whatever ends it early, drop the invalid index it left before going on."""
    try:
        connection.exec_driver_sql(statement)
    except BaseException as error:
        left: list[str] = []
        pressed: list[int] = []
        if finding.table is not None and finding.index is not None:
            with interrupts_deferred(log) as pressed:
                left = clear_failed_build(
                    connection, build_pid, statement, url, settings, finding.table, finding.index
                )
        if pressed or not isinstance(error, DBAPIError):
            log.warning(
                "%s: %s was interrupted; %s", finding.id, statement, "; ".join(left) or "nothing left"
            )
            if isinstance(error, DBAPIError):
                raise KeyboardInterrupt from None  # pressed while clearing up after a failure
            raise
        message = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise IndexApplyError(
            f"applying {finding.id} to {describe(url)} failed",
            detail=f"{statement}: {message}" + "".join(f"; {note}" for note in left),
            hint="if a lock timed out, retry when the table is quieter; otherwise fix the "
            "cause and rerun dbops review-indexes",
        ) from None


def _drop_leftovers(
    connection: Connection,
    settings: Settings,
    report: IndexReviewReport,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> list[str]:
    """Drop the invalid indexes dead runs left (the review names them ``left_by``), re-checked in the
    catalogue under the lock. Housekeeping: a leftover that cannot be dropped now is only reported."""
    cleared = []
    for leftover in report.findings:
        if leftover.kind is FindingKind.INVALID and leftover.evidence.get("left_by") and leftover.table:
            for note in drop_half_built(connection, settings, leftover.table, str(leftover.index)):
                log.info("leftover of a dead run: %s", note)
                cleared.append(note)
    return cleared


def _current_finding(report: IndexReviewReport, finding_id: str) -> Finding:
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
