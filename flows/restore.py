"""``restore`` and ``restore-rollback``: what an on-call operator runs from the Prefect UI.

The parameters render as a form: the backup (an id, or latest), the target database, its name typed
again to confirm, and the mode. Nothing happens unless the confirmation matches.

A restore builds and checks the copy, then pauses for an operator: the run's page shows what the
copy holds against the live database, and a form to approve or reject it. The maintenance slot is
released for the wait and taken again after an approval.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State

from flows.approval import ask_operator, unapproved
from flows.events import restore_awaiting_approval, restore_rejected, restore_rolled_back, restore_swapped
from flows.maintenance_slot import maintenance_slot
from flows.restore_rehearsal import rehearsal_rows
from flows.validate_integrity import published_validator
from models.rehearsal import RestoreMode, RestoreResult, RollbackResult
from models.settings import load_settings
from tasks.restore.operator import PreparedRestore, discard_restore, finish_restore, prepare_restore
from tasks.restore.rollback import rollback
from tasks.restore.summary import markdown
from tasks.storage import open_store

prepare_task = task(name="build-and-check-copy", cache_policy=NO_CACHE)(prepare_restore)
finish_task = task(name="put-copy-in-place", cache_policy=NO_CACHE)(finish_restore)
discard_task = task(name="drop-rejected-copy", cache_policy=NO_CACHE)(discard_restore)
rollback_task = task(name="roll-back-restore", cache_policy=NO_CACHE)(rollback)


@flow(name="restore")
def restore_flow(
    target: str,
    confirm: str = "",
    backup_id: str = "latest",
    mode: Literal["swap", "in-place"] = "swap",
    reseed: bool = False,
    from_database: str = "",
    approval: bool = True,
) -> RestoreResult | State:
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
        approval: Pause for an operator to approve the checked copy before the target is touched.
            Turn off only for unattended restores, such as refreshing staging.
    """
    settings = load_settings()
    logger = get_run_logger()
    validate = published_validator(settings)

    def prepare() -> PreparedRestore:
        return prepare_task(
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

    if not approval:  # no wait for a person: one hold of the slot, so nothing runs in between
        with maintenance_slot(settings, "restore"):
            result = finish_task(prepare(), open_store(settings))
    else:
        with maintenance_slot(settings, "restore"):
            prepared = prepare()
        summary = prepared.summary
        restore_awaiting_approval(target, summary.backup_id, summary.copy_database)
        decision = ask_operator(
            markdown(summary, datetime.now(UTC)), settings.restore_approval_timeout_seconds
        )
        if not decision.approved:
            discard_task(prepared)
            restore_rejected(target, summary.backup_id, decision.answer)
            message = (
                f"Restore of {target} from backup {summary.backup_id} not done: {decision.answer}. "
                f"The copy was dropped and {target} was not touched."
            )
            logger.warning(message)
            return unapproved(decision, message)
        logger.info("restore of %s %s", target, decision.answer)
        with maintenance_slot(settings, "restore"):
            result = finish_task(prepared, open_store(settings))
    restore_swapped(result)
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
        result = rollback_task(settings, target, confirm=confirm, logger=get_run_logger())
    restore_rolled_back(result)
    return result
