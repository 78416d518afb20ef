"""The two scheduled chains: the nightly backup with its rehearsal, and the weekly maintenance.

Each step is a subflow, so it keeps its own run, artifacts and state in the UI; the chain ends
Failed if any step failed, and the weekly one runs every step even when an earlier one fails (a
failed archive is no reason to skip the integrity checks).
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.archive_logs import archive_logs_flow
from flows.backup import backup_flow
from flows.index_review import index_review_flow
from flows.restore_copies import restore_copies_flow
from flows.restore_rehearsal import restore_rehearsal_flow
from flows.validate_integrity import validate_integrity_flow
from models.errors import DbopsError
from models.rehearsal import RehearsalRecord


@flow(name="nightly-backup")
def nightly_backup_flow() -> RehearsalRecord:
    """Back up the database, then prove that very backup restores."""
    manifest = backup_flow()
    return restore_rehearsal_flow(backup_id=manifest.backup_id)


@flow(name="weekly-maintenance")
def weekly_maintenance_flow() -> list[str]:
    """Archive old logs, review the indexes, validate integrity, and expire old restore copies; report
    every step's outcome."""
    logger = get_run_logger()
    steps = {
        "archive-logs": archive_logs_flow,
        "index-review": index_review_flow,
        "validate-integrity": validate_integrity_flow,
        "restore-copies": restore_copies_flow,
    }
    failed = []
    for name, step in steps.items():
        state = step(return_state=True)  # type: ignore[operator]
        if not state.is_completed():
            failed.append(f"{name}: {state.message}")
            logger.error("%s failed: %s", name, state.message)
    if failed:
        raise DbopsError(
            f"{len(failed)} of {len(steps)} weekly maintenance step(s) failed",
            detail="; ".join(failed),
            hint="open the failed subflow runs for their artifacts and logs",
        )
    return list(steps)
