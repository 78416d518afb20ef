"""The catalogue of integrity checks and the runner that executes them concurrently."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from models.database_url import describe
from models.errors import IntegrityValidationError
from models.integrity import CheckResult, CheckStatus, IntegrityReport, Severity
from models.schema import TABLES
from models.seed import SeedDocument
from models.settings import Settings
from tasks.integrity.context import CheckContext
from tasks.integrity.data_checks import relations, row_counts, uniqueness
from tasks.integrity.outcome import Outcome
from tasks.integrity.physical import amcheck
from tasks.integrity.schema_checks import enums, indexes, migrations_at_head, schema_drift
from tasks.integrity.seed_invariants import seed_invariants
from tasks.postgres.engine import check_connection, make_engine

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    name: str
    severity: Severity
    run: Callable[[CheckContext], Outcome]
    #: Reads whole tables or indexes; started first so the long jobs overlap.
    scans_data: bool = False


#: In report order. amcheck's severity is an error for corruption; its outcome lowers it to a warning
#: where amcheck is not available.
CATALOGUE = (
    Check("migrations", Severity.ERROR, migrations_at_head),
    Check("schema drift", Severity.ERROR, schema_drift),
    Check("uniqueness", Severity.ERROR, uniqueness, scans_data=True),
    Check("relations", Severity.ERROR, relations, scans_data=True),
    Check("enums", Severity.ERROR, enums),
    Check("indexes", Severity.ERROR, indexes),
    Check("seed invariants", Severity.ERROR, seed_invariants),
    Check("amcheck", Severity.ERROR, amcheck, scans_data=True),
    Check("row counts", Severity.ERROR, row_counts, scans_data=True),
)


def validate_integrity(
    url: URL,
    settings: Settings,
    *,
    seed_document: SeedDocument | None = None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> IntegrityReport:
    """Run every check against the database at *url* and return the report (never raises on findings)."""
    log = logger or _log
    started = time.monotonic()
    engine = make_engine(
        url,
        settings,
        purpose="validate",
        server_settings={
            "default_transaction_read_only": "on",
            "work_mem": f"{settings.validation_work_mem_mb}MB",
            # The checks already run on validation_concurrency connections at once. Parallel workers on
            # top of that put three processes per connection on the same cores: on 2 cores the whole
            # validation measured 1.9x slower with them than without.
            "max_parallel_workers_per_gather": "0",
        },
    )
    check_connection(engine)
    with engine.connect() as connection:
        server_version = str(connection.execute(text("SHOW server_version")).scalar_one())
        revision = MigrationContext.configure(connection).get_current_revision()
    context = CheckContext(engine=engine, settings=settings, seed_document=seed_document)
    with ThreadPoolExecutor(
        max_workers=settings.validation_concurrency, thread_name_prefix="integrity"
    ) as pool:
        started_first = sorted(CATALOGUE, key=lambda check: not check.scans_data)
        futures = {check.name: pool.submit(_run, check, context) for check in started_first}
        results = [futures[check.name].result() for check in CATALOGUE]
    for result in results:
        log.info(
            "%s: %s (%.2f s) %s", result.name, result.status.value, result.elapsed_seconds, result.detail
        )
    counts = context.row_counts()
    return IntegrityReport(
        database=describe(url),
        server_version=server_version,
        revision=revision,
        checked_at=datetime.now(UTC),
        elapsed_seconds=round(time.monotonic() - started, 3),
        row_counts={table.name: counts[table.name] for table in TABLES if table.name in counts},
        checks=results,
    )


def _run(check: Check, context: CheckContext) -> CheckResult:
    """One check, timed; a check the database cannot run is a failure of that check, not of the run."""
    started = time.monotonic()
    try:
        outcome = check.run(context)
    except DBAPIError as error:
        message = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        outcome = Outcome(CheckStatus.FAILED, f"the check could not run: {message}")
    return CheckResult(
        name=check.name,
        severity=outcome.severity or check.severity,
        status=outcome.status,
        detail=outcome.detail,
        samples=outcome.samples,
        elapsed_seconds=round(time.monotonic() - started, 3),
    )


def integrity_error(report: IntegrityReport) -> IntegrityValidationError | None:
    """The error a report with failed error-severity checks amounts to; None when it passed."""
    if report.passed:
        return None
    return IntegrityValidationError(
        f"{len(report.errors)} integrity check(s) failed on {report.database}",
        detail="; ".join(f"{check.name}: {check.detail}" for check in report.errors),
        hint="see the sample rows (integrity-summary artifact, or dbops validate --json) and repair the data",
    )


def raise_for_errors(report: IntegrityReport) -> None:
    error = integrity_error(report)
    if error is not None:
        raise error
