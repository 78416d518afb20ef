"""One slot for the jobs that must never overlap on a database: backup, migration, restore,
rehearsal and archiving.

It is a Prefect global concurrency limit of 1, so it holds across processes and machines wherever
the flows run (work pools and workers included), and a crashed holder's lease expires rather than
blocking the slot forever. The limit is created on first use, so the guard works on a fresh server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from models.settings import Settings

MAINTENANCE_LIMIT = "dbops-database-maintenance"


@contextmanager
def maintenance_slot(settings: Settings, job: str) -> Iterator[None]:
    """Hold the maintenance slot for the block, waiting for it at most the configured time."""
    ensure_limit()
    logger = get_run_logger()
    logger.info("%s: waiting for the %s slot", job, MAINTENANCE_LIMIT)
    with concurrency(
        MAINTENANCE_LIMIT, occupy=1, strict=True, timeout_seconds=settings.maintenance_wait_timeout_seconds
    ):
        logger.info("%s: holding the %s slot", job, MAINTENANCE_LIMIT)
        yield


def ensure_limit() -> None:
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(MAINTENANCE_LIMIT)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # created by a concurrent run a moment ago
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=MAINTENANCE_LIMIT, limit=1)
                )
