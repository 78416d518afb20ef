"""The integrity checks of a freshly restored copy, in two stages around its index builds.

A restore loads the rows first and builds the indexes and constraints after (post-data). The reads
that need only rows (each table's count, every foreign key's orphans) need nothing post-data builds,
so :meth:`StagedChecks.data_stage` runs them while post-data runs. Their results are memoised in
the one :class:`CheckContext` that :meth:`StagedChecks.report` then runs the whole catalogue on, so
nothing is read twice and every finding is reported by the same check, with the same message, as
``dbops validate`` reports it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from models.integrity import IntegrityReport
from models.schema import TABLES
from models.seed import SeedDocument
from models.settings import Settings
from tasks.integrity.context import counting_key
from tasks.integrity.runner import close_context, open_context, run_catalogue

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
T = TypeVar("T")


class StagedChecks:
    """One validation of the database at *url*, started before its indexes exist."""

    def __init__(self, url: URL, settings: Settings, seed_document: SeedDocument | None) -> None:
        self.url = url
        self.context = open_context(url, settings, seed_document)

    def close(self) -> None:
        close_context(self.context)

    def data_stage(self, log: Logger) -> float:
        """Count every modelled table's rows and every foreign key's orphans on the validation's own
        pool size; seconds taken. A read that fails here is memoised and reported by the check that
        needs it in :meth:`report`, as its own failure, with the same message."""
        started = time.monotonic()
        context = self.context
        modelled = {table.name for table in TABLES}
        keys = [
            key
            for table in TABLES
            for key in table.foreign_key_constraints
            if key.referred_table.name in modelled
        ]
        connections = context.connections
        assert connections is not None

        def released(read: Callable[[T], object], argument: T) -> Callable[[], object]:
            # Each pool thread hands its connection on when its read ends, so the catalogue's pool
            # reuses them instead of opening as many again.
            def run() -> object:
                try:
                    return read(argument)
                finally:
                    connections.release()

            return run

        failures = 0
        with ThreadPoolExecutor(max_workers=context.parallelism, thread_name_prefix="early-check") as pool:
            futures: list[Future[object]] = [
                *(pool.submit(released(context.orphan_count, key)) for key in keys),
                # A table with a foreign key is counted by that key's scan above.
                *(
                    pool.submit(released(context.row_count, table))
                    for table in TABLES
                    if counting_key(table) is None
                ),
            ]
            for future in futures:
                error = future.exception()
                if error is not None and not isinstance(error, DBAPIError):
                    raise error
                failures += error is not None
        seconds = round(time.monotonic() - started, 3)
        log.info(
            "data checks beside the index builds: %d tables counted, %d foreign keys' orphans, in %.1f s%s",
            len(TABLES),
            len(keys),
            seconds,
            f" ({failures} failed, reported by their checks)" if failures else "",
        )
        return seconds

    def report(self, log: Logger) -> IntegrityReport:
        """Every check of the catalogue on this context, reusing what :meth:`data_stage` read."""
        return run_catalogue(self.context, self.url, log)
