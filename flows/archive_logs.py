"""``archive-logs``: move old audit logs and analytics events to the object store, nightly.

Runs in the maintenance slot shared with backups and restores, so a backup never dumps a table
halfway through being archived.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.maintenance_slot import maintenance_slot
from models.log_archive import ArchiveOutcome
from models.settings import load_settings
from tasks.log_archive.archiving import archive_table
from tasks.postgres.engine import database_url
from tasks.storage import open_store

archive_table_task = task(name="archive-table", cache_policy=NO_CACHE)(archive_table)


@flow(name="archive-logs")
def archive_logs_flow(
    tables: list[Literal["audit_logs", "analytics_events"]] = ["audit_logs", "analytics_events"],  # noqa: B006 (Prefect copies parameters per run)
    older_than_days: int | None = None,
    dry_run: bool = False,
) -> list[ArchiveOutcome]:
    """Move rows past their retention to the object store, each batch verified before it is deleted.

    Args:
        tables: The tables to archive.
        older_than_days: Override the retention of DBOPS_ARCHIVE_*_DAYS for this run.
        dry_run: Count what would be archived; write nothing.
    """
    settings = load_settings()
    url = database_url(settings)
    store = open_store(settings)
    logger = get_run_logger()
    with maintenance_slot(settings, "archive-logs"):
        outcomes = [
            archive_table_task(
                url, settings, store, table, older_than_days=older_than_days, dry_run=dry_run, logger=logger
            )
            for table in tables
        ]
    create_table_artifact(
        key="archive-logs",
        table=[
            {
                "database": outcome.source.describe() if outcome.source else "",
                "table": outcome.table,
                "cut-off": outcome.cutoff.isoformat(),
                "rows": outcome.rows_archived,
                "batches": outcome.batches,
                "stored MB": round(outcome.bytes_stored / 1e6, 1),
                "rows/s": outcome.rows_per_second,
                "table MB before": round(outcome.table_bytes_before / 1e6, 1),
                "table MB after": round(outcome.table_bytes_after / 1e6, 1),
                "runs": ", ".join(outcome.run_ids),
            }
            for outcome in outcomes
        ],
        description="dry run: nothing was written" if dry_run else f"archived to {store.describe()}",
    )
    return outcomes
