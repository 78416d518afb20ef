"""``restore-rehearsal``: prove the newest (or a given) backup restores, every night.

The integrity checks of the restored copy run as a task of this flow and publish their artifacts
here; the rehearsal's phase timings (the measured recovery time) go into a table artifact. The run
ends Failed when the backup does not restore, its counts differ, or its integrity checks fail.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.events import rehearsal_finished
from flows.maintenance_slot import maintenance_slot
from flows.validate_integrity import publish_integrity_report
from models.rehearsal import RehearsalRecord, RestoredCopy
from models.settings import load_settings
from tasks.restore.rehearsal import raise_for_failure, rehearse
from tasks.storage import open_store

rehearse_task = task(name="rehearse-restore", cache_policy=NO_CACHE)(rehearse)


@flow(name="restore-rehearsal")
def restore_rehearsal_flow(
    backup_id: str = "latest",
    keep: bool = False,
) -> RehearsalRecord:
    """Restore a backup into a scratch database, check it, and record how long recovery took.

    Args:
        backup_id: The backup to rehearse (an id from dbops backups), or latest.
        keep: Keep the scratch database afterwards, for a closer look.
    """
    settings = load_settings()
    logger = get_run_logger()

    with maintenance_slot(settings, "restore-rehearsal"):
        record = rehearse_task(
            settings,
            open_store(settings),
            backup_id=backup_id,
            keep=keep,
            publish=publish_integrity_report,
            logger=logger,
        )
    rehearsal_finished(record)
    create_table_artifact(
        key="restore-rehearsal",
        table=rehearsal_rows(record),
        description=f"Rehearsal of backup {record.backup_id}: {'passed' if record.passed else 'FAILED'}",
    )
    raise_for_failure(record)
    return record


def rehearsal_rows(record: RestoredCopy) -> list[dict[str, object]]:
    timings = record.timings
    return [
        {"phase": "download and unpack", "seconds": timings.download, "bytes": record.dump_bytes},
        {
            "phase": f"pg_restore --jobs {record.jobs}",
            "seconds": timings.restore,
            "bytes": record.restored_database_bytes,
        },
        {"phase": "  pre-data (schema)", "seconds": timings.pre_data, "bytes": None},
        {"phase": "  data", "seconds": timings.data, "bytes": None},
        {"phase": "  post-data (indexes, constraints)", "seconds": timings.post_data, "bytes": None},
        {"phase": "  beside post-data: counts, data checks", "seconds": timings.early_checks, "bytes": None},
        {"phase": "compare counts, measure size", "seconds": timings.counts, "bytes": None},
        {"phase": f"migrate to {record.migrated_to or '-'}", "seconds": timings.migrate, "bytes": None},
        {"phase": "integrity checks", "seconds": timings.validation, "bytes": None},
        {"phase": "recovery time (total)", "seconds": timings.total, "bytes": record.stored_bytes},
    ]
