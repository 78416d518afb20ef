"""The integrity checks of a freshly restored copy, in two stages around its index builds.

A restore loads the rows first and builds the indexes and constraints after (post-data). The checks
that read only rows (each table's count, every foreign key's orphans) and the enum check (the
catalogue that pre-data made) need nothing post-data builds, so :meth:`StagedChecks.data_stage` runs
them while post-data runs. Their results are memoised in the one :class:`CheckContext` that
:meth:`StagedChecks.report` then runs the whole catalogue on, so nothing is read twice and every
finding is reported by the same check, with the same message, as ``dbops validate`` reports it.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from models.database_url import describe
from models.integrity import CheckResult, CheckStatus, IntegrityReport
from models.schema import TABLES
from models.seed import SeedDocument
from models.settings import Settings
from tasks.integrity.context import CheckContext
from tasks.integrity.outcome import Outcome
from tasks.integrity.runner import CATALOGUE, Check
from tasks.integrity.schema_checks import enums
from tasks.postgres.engine import make_engine

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class StagedChecks:
    """One validation of the database at *url*, started before its indexes exist."""

    def __init__(self, url: URL, settings: Settings, seed_document: SeedDocument | None) -> None:
        self.url = url
        engine = make_engine(
            url,
            settings,
            purpose="validate",
            server_settings={
                "default_transaction_read_only": "on",
                "work_mem": f"{settings.validation_work_mem_mb}MB",
                # As the runner: the checks already share the cores among themselves.
                "max_parallel_workers_per_gather": "0",
            },
        )
        self.context = CheckContext(engine=engine, settings=settings, seed_document=seed_document)
        self._early: dict[str, Outcome] = {}

    def close(self) -> None:
        self.context.engine.dispose()

    def data_stage(self, log: Logger) -> float:
        """Count every modelled table's rows and every foreign key's orphans, and check the enums, on
        ``validation_concurrency`` connections; seconds taken. A query that fails here is left for
        :meth:`report`, which runs it again and reports it as the check's own failure."""
        started = time.monotonic()
        context = self.context
        keys = [
            key
            for table in TABLES
            for key in table.foreign_key_constraints
            if key.referred_table.name in {modelled.name for modelled in TABLES}
        ]

        def enum_check() -> object:
            return self._early.setdefault("enums", enums(context))

        failures = 0
        with ThreadPoolExecutor(
            max_workers=context.settings.validation_concurrency, thread_name_prefix="early-check"
        ) as pool:
            futures: list[Future[Any]] = [
                *(pool.submit(context.orphan_count, key) for key in keys),
                *(pool.submit(context.row_count, table) for table in TABLES),
                pool.submit(enum_check),
            ]
            for future in futures:
                error = future.exception()
                if error is not None and not isinstance(error, DBAPIError):
                    raise error
                failures += error is not None
        seconds = round(time.monotonic() - started, 3)
        log.info(
            "data checks beside the index builds: %d tables counted, %d foreign keys' orphans, enums, "
            "in %.1f s%s",
            len(TABLES),
            len(keys),
            seconds,
            f" ({failures} left for the full validation)" if failures else "",
        )
        return seconds

    def report(self, log: Logger) -> IntegrityReport:
        """Every check of the catalogue on this context, reusing what :meth:`data_stage` read."""
        started = time.monotonic()
        context = self.context
        with context.engine.connect() as connection:
            server_version = str(connection.execute(text("SHOW server_version")).scalar_one())
            revision = MigrationContext.configure(connection).get_current_revision()
        with ThreadPoolExecutor(
            max_workers=context.settings.validation_concurrency, thread_name_prefix="integrity"
        ) as pool:
            started_first = sorted(CATALOGUE, key=lambda check: not check.scans_data)
            futures = {check.name: pool.submit(self._run, check) for check in started_first}
            results = [futures[check.name].result() for check in CATALOGUE]
        for result in results:
            log.info(
                "%s: %s (%.2f s) %s", result.name, result.status.value, result.elapsed_seconds, result.detail
            )
        counts = context.row_counts()
        return IntegrityReport(
            database=describe(self.url),
            server_version=server_version,
            revision=revision,
            checked_at=datetime.now(UTC),
            elapsed_seconds=round(time.monotonic() - started, 3),
            row_counts={table.name: counts[table.name] for table in TABLES if table.name in counts},
            checks=results,
        )

    def _run(self, check: Check) -> CheckResult:
        started = time.monotonic()
        try:
            outcome = self._early.get(check.name) or check.run(self.context)
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
