"""``restore`` and ``restore-rollback``: what an on-call operator runs from the Prefect UI.

The parameters render as a form: the backup (an id, or latest), the target database, its name typed
again to confirm, and the mode. Nothing happens unless the confirmation matches.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.maintenance_slot import maintenance_slot
from flows.restore_rehearsal import rehearsal_rows
from flows.validate_integrity import published_validator
from models.rehearsal import RestoreMode, RestoreResult, RollbackResult
from models.settings import load_settings
from tasks.restore.operator import restore
from tasks.restore.rollback import rollback
from tasks.storage import open_store

restore_task = task(name="restore-database", cache_policy=NO_CACHE)(restore)
rollback_task = task(name="roll-back-restore", cache_policy=NO_CACHE)(rollback)


@flow(name="restore")
def restore_flow(
    target: str,
    confirm: str = "",
    backup_id: str = "latest",
    mode: Literal["swap", "in-place"] = "swap",
    reseed: bool = False,
    from_database: str = "",
) -> RestoreResult:
    """Restore a backup over a database, after checking it; nothing happens unless confirm matches.

    Args:
        target: The database to replace, e.g. platform.
        confirm: Type the target's name again; otherwise nothing happens.
        backup_id: The backup to restore (see dbops backups), or latest.
        mode: swap: build beside the target, then swap names (the old one is kept). in-place: drop
            and recreate the target.
        reseed: Development only: seed again after restoring.
        from_database: Restore a backup of this database instead of the target's own (e.g. restore
            platform's backup into platform_copy); empty means the target's name.
    """
    settings = load_settings()
    logger = get_run_logger()
    validate = published_validator(settings)

    with maintenance_slot(settings, "restore"):
        result = restore_task(
            settings,
            open_store(settings),
            backup_id=backup_id,
            target=target,
            confirm=confirm,
            mode=RestoreMode(mode),
            reseed=reseed,
            from_database=from_database or None,
            validate=validate,
            logger=logger,
        )
    create_table_artifact(
        key="restore",
        table=rehearsal_rows(result),
        description=f"Backup {result.backup_id} restored into {result.target} ({result.mode.value})"
        + (
            f"; the previous database is kept as {result.previous_database}"
            if result.previous_database
            else ""
        ),
    )
    return result


@flow(name="restore-rollback")
def restore_rollback_flow(
    target: str,
    confirm: str = "",
) -> RollbackResult:
    """Put back the database the last swap restore of *target* set aside; nothing happens unless
    confirm matches.

    Args:
        target: The database a swap restore replaced.
        confirm: Type the target's name again; otherwise nothing happens.
    """
    settings = load_settings()
    with maintenance_slot(settings, "restore-rollback"):
        return rollback_task(settings, target, confirm=confirm, logger=get_run_logger())
