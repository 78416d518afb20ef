"""The catalogue of integrity checks and the runner that spreads their work over a pool of connections."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
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
from tasks.integrity.context import CheckContext, ThreadConnections
from tasks.integrity.data_checks import (
    relations,
    relations_reads,
    row_count_reads,
    row_counts,
    uniqueness,
    uniqueness_reads,
)
from tasks.integrity.outcome import Outcome
from tasks.integrity.physical import amcheck, amcheck_reads
from tasks.integrity.schedule import Read, in_catalogue_order, largest_first, parallelism
from tasks.integrity.schema_checks import enums, indexes, migrations_at_head, schema_drift
from tasks.integrity.seed_invariants import seed_invariants
from tasks.postgres.engine import make_engine
from tasks.postgres.libpq import url_parameters

_log = logging.getLogger(__name__)

TABLE_SIZES = text("""
    SELECT relname, pg_relation_size(oid) FROM pg_class
    WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'
""")


@dataclass(frozen=True)
class Check:
    name: str
    severity: Severity
    run: Callable[[CheckContext], Outcome]
    #: The check's slow reads (table scans, index checks), run ahead of it across the pool.
    reads: Callable[[CheckContext, Mapping[str, int]], list[Read]] | None = None


#: In report order. amcheck's severity is an error for corruption; its outcome lowers it to a warning
#: where amcheck is not available.
CATALOGUE = (
    Check("migrations", Severity.ERROR, migrations_at_head),
    Check("schema drift", Severity.ERROR, schema_drift),
    Check("uniqueness", Severity.ERROR, uniqueness, uniqueness_reads),
    Check("relations", Severity.ERROR, relations, relations_reads),
    Check("enums", Severity.ERROR, enums),
    Check("indexes", Severity.ERROR, indexes),
    Check("seed invariants", Severity.ERROR, seed_invariants),
    Check("amcheck", Severity.ERROR, amcheck, amcheck_reads),
    Check("row counts", Severity.ERROR, row_counts, row_count_reads),
)


def validation_parallelism(settings: Settings, url: URL) -> int:
    """DBOPS_VALIDATE_PARALLELISM, or this machine's cores for a server on it, else 2."""
    return parallelism(settings.validate_parallelism, url_parameters(url).get("host"), os.cpu_count())


def validate_integrity(
    url: URL,
    settings: Settings,
    *,
    seed_document: SeedDocument | None = None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> IntegrityReport:
    """Run every check against the database at *url* and return the report (never raises on findings).

    Raises DatabaseUnavailableError when the database cannot be reached at all.
    """
    context = open_context(url, settings, seed_document)
    try:
        return run_catalogue(context, url, logger or _log)
    finally:
        close_context(context)


def open_context(url: URL, settings: Settings, seed_document: SeedDocument | None) -> CheckContext:
    """The context one validation's checks share: read-only connections, one per pool thread."""
    engine = make_engine(
        url,
        settings,
        purpose="validate",
        server_settings={
            "default_transaction_read_only": "on",
            "work_mem": f"{settings.validation_work_mem_mb}MB",
            # The checks already run on several connections at once. Parallel workers on top of that
            # put three processes per connection on the same cores: on 2 cores the whole validation
            # measured 1.9x slower with them than without.
            "max_parallel_workers_per_gather": "0",
        },
    )
    return CheckContext(
        engine=engine,
        settings=settings,
        seed_document=seed_document,
        connections=ThreadConnections(engine),
        parallelism=validation_parallelism(settings, url),
    )


def close_context(context: CheckContext) -> None:
    if context.connections is not None:
        context.connections.close()
    context.engine.dispose()


def run_catalogue(
    context: CheckContext, url: URL, log: logging.Logger | logging.LoggerAdapter[logging.Logger]
) -> IntegrityReport:
    """Every check of the catalogue on *context*, reusing whatever it already read (a restore reads
    the rows while its indexes build)."""
    started = time.monotonic()
    assert context.connections is not None, "the catalogue runs on a context with a pool"
    with context.connection() as connection:
        server_version = str(connection.execute(text("SHOW server_version")).scalar_one())
        revision = MigrationContext.configure(connection).get_current_revision()
        sizes = {str(name): int(size) for name, size in connection.execute(TABLE_SIZES)}
    reads = [read for check in CATALOGUE for read in _reads(check, context, sizes)]
    context.connections.release()  # the first worker thread takes it over
    results = _run_on_pool(context, reads, context.parallelism)
    for result in results:
        log.info(
            "%s: %s (%.2f s) %s", result.name, result.status.value, result.elapsed_seconds, result.detail
        )
    elapsed = round(time.monotonic() - started, 3)
    log.info("validated in %.2f s on %d connection(s)", elapsed, context.parallelism)
    counts = context.row_counts()
    return IntegrityReport(
        database=describe(url),
        server_version=server_version,
        revision=revision,
        checked_at=datetime.now(UTC),
        elapsed_seconds=elapsed,
        parallelism=context.parallelism,
        row_counts={table.name: counts[table.name] for table in TABLES if table.name in counts},
        checks=results,
    )


def _reads(check: Check, context: CheckContext, sizes: Mapping[str, int]) -> list[Read]:
    """The check's reads; none if listing them fails, which the check then meets and reports itself."""
    if check.reads is None:
        return []
    try:
        return check.reads(context, sizes)
    except Exception:  # reported by the check, which asks for the same memoised read
        return []


def _run_on_pool(context: CheckContext, reads: list[Read], workers: int) -> list[CheckResult]:
    """The checks without reads, every read largest first, then the checks that have reads, on
    *workers* threads of one connection each.

    A check with reads starts once a thread is free after the last read has started, waits for its
    own reads to end, and assembles its outcome from them. Its time is its reads' time plus its own.
    """
    read_seconds = dict.fromkeys((check.name for check in CATALOGUE), 0.0)
    guard = threading.Lock()

    def run_read(read: Read) -> None:
        read_started = time.monotonic()
        # A read's error is memoised: the check that needs the read raises it again and reports it.
        with contextlib.suppress(Exception):
            read.run()
        with guard:
            read_seconds[read.check] += time.monotonic() - read_started

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="integrity") as pool:
        pending: dict[str, list[Future[None]]] = {check.name: [] for check in CATALOGUE}
        futures: dict[str, Future[CheckResult]] = {}
        # Checks of the catalogue alone first: mostly client-side work (schema drift's comparison) that
        # would otherwise be the last thing left while the other connections idle.
        for check in CATALOGUE:
            if check.reads is None:
                futures[check.name] = pool.submit(run_check, check, context)
        for read in largest_first(reads):
            pending[read.check].append(pool.submit(run_read, read))

        def assemble(check: Check) -> CheckResult:
            wait(pending[check.name])
            with guard:
                spent = read_seconds[check.name]
            return run_check(check, context, spent)

        for check in CATALOGUE:
            if check.reads is not None:
                futures[check.name] = pool.submit(assemble, check)
        results = {name: future.result() for name, future in futures.items()}
    return in_catalogue_order(results, [check.name for check in CATALOGUE])


def run_check(check: Check, context: CheckContext, read_seconds: float = 0.0) -> CheckResult:
    """One check, timed; a check the database cannot run is a failure of that check, not of the run.

    Callable on its own, with a context of its own, to run one check (a restore can check a table's
    relations as soon as its rows are in); *read_seconds* adds the time its reads took elsewhere."""
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
        elapsed_seconds=round(time.monotonic() - started + read_seconds, 3),
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
