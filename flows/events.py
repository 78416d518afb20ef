"""Prefect events for every operator action, so the event feed says who did what to which database.

Each event's resource is the database (``dbops.database.<name>``), with the backup as a related
resource: the feed filtered on a database reads as its history of backups, rehearsals, restores and
rollbacks, and an automation can match any of them. Emitted inside a flow run, Prefect relates the
event to the run, its flow and its deployment by itself; from the command line the event names the
operating-system user and host instead.

The command line emits only when the ``PREFECT_API_URL`` environment variable points at a server:
without one there is no feed to read, and starting an ephemeral server to hold one event would cost
seconds. Prefect is imported only then, so commands that do not talk to Prefect start without it.
Like artifacts, events are reports about the work: one that cannot be sent is logged and the work
goes on.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import sys
from collections.abc import Mapping
from typing import Any

from models.backup import BackupManifest, source_of
from models.rehearsal import RehearsalRecord, RestoreResult, RollbackResult

_log = logging.getLogger(__name__)
PREFIX = "dbops"

BACKUP_COMPLETED = f"{PREFIX}.backup.completed"
REHEARSAL_PASSED = f"{PREFIX}.rehearsal.passed"
REHEARSAL_FAILED = f"{PREFIX}.rehearsal.failed"
RESTORE_AWAITING_APPROVAL = f"{PREFIX}.restore.awaiting-approval"
RESTORE_SWAPPED = f"{PREFIX}.restore.swapped"
RESTORE_REJECTED = f"{PREFIX}.restore.rejected"
RESTORE_ROLLED_BACK = f"{PREFIX}.restore.rolled-back"
TABLES_AWAITING_APPROVAL = f"{PREFIX}.tables.awaiting-approval"
TABLES_MERGED = f"{PREFIX}.tables.merged"
TABLES_REJECTED = f"{PREFIX}.tables.rejected"


def database_resource(database: str) -> dict[str, str]:
    return {"prefect.resource.id": f"{PREFIX}.database.{database}", "prefect.resource.name": database}


def backup_resource(backup_id: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"{PREFIX}.backup.{backup_id}",
        "prefect.resource.name": backup_id,
        "prefect.resource.role": "backup",
    }


def emit(event: str, *, database: str, backup_id: str | None, payload: Mapping[str, Any]) -> None:
    """Send one event about *database* (and *backup_id*); never raises."""
    in_flow = "prefect" in sys.modules and _in_flow_run()
    if not in_flow and not os.environ.get("PREFECT_API_URL"):
        return
    related = [backup_resource(backup_id)] if backup_id else []
    body = dict(payload)
    if not in_flow:
        body["operator"] = (
            f"{getpass.getuser()}@{socket.gethostname()} (dbops command line, pid {os.getpid()})"
        )
    try:
        from prefect.events import emit_event
        from prefect.events.worker import EventsWorker

        emit_event(event=event, resource=database_resource(database), related=related, payload=body)
        if not in_flow:
            # The command line exits right after; a flow run's engine drains the worker itself.
            EventsWorker.drain_all(timeout=10)
    except Exception as error:  # an event is a report about the work, never part of it
        _log.warning("could not emit the %s event (the work goes on): %s", event, error)


def _in_flow_run() -> bool:
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


def backup_completed(manifest: BackupManifest) -> None:
    emit(
        BACKUP_COMPLETED,
        database=source_of(manifest).database,
        backup_id=manifest.backup_id,
        payload={
            "stored_bytes": manifest.stored_bytes,
            "dump_bytes": manifest.dump_bytes,
            "duration_seconds": manifest.duration_seconds,
            "revision": manifest.alembic_revision,
        },
    )


def rehearsal_finished(record: RehearsalRecord) -> None:
    emit(
        REHEARSAL_PASSED if record.passed else REHEARSAL_FAILED,
        database=record.database or "unknown",
        backup_id=record.backup_id,
        payload={
            "recovery_seconds": record.timings.total,
            "failure": record.failure,
            "server": record.server,
        },
    )


def restore_awaiting_approval(database: str, backup_id: str, copy: str | None) -> None:
    emit(RESTORE_AWAITING_APPROVAL, database=database, backup_id=backup_id, payload={"copy": copy})


def restore_swapped(result: RestoreResult) -> None:
    emit(
        RESTORE_SWAPPED,
        database=result.target,
        backup_id=result.backup_id,
        payload={
            "mode": result.mode.value,
            "previous_database": result.previous_database,
            "recovery_seconds": result.timings.total,
        },
    )


def restore_rejected(database: str, backup_id: str, reason: str) -> None:
    emit(RESTORE_REJECTED, database=database, backup_id=backup_id, payload={"reason": reason})


def restore_rolled_back(result: RollbackResult) -> None:
    emit(
        RESTORE_ROLLED_BACK,
        database=result.target,
        backup_id=None,
        payload={"restored_from": result.restored_from, "set_aside_as": result.set_aside_as},
    )


def tables_awaiting_approval(database: str, backup_id: str, schema: str) -> None:
    emit(TABLES_AWAITING_APPROVAL, database=database, backup_id=backup_id, payload={"schema": schema})


def tables_rejected(database: str, backup_id: str, schema: str, reason: str) -> None:
    """A merge not made: rejected, or no answer. The restored rows stay in *schema*."""
    emit(
        TABLES_REJECTED, database=database, backup_id=backup_id, payload={"schema": schema, "reason": reason}
    )


def tables_merged(database: str, backup_id: str, counts: Mapping[str, Mapping[str, int]]) -> None:
    """*counts*: per table, how many rows were inserted, already present and replaced."""
    emit(TABLES_MERGED, database=database, backup_id=backup_id, payload={"tables": dict(counts)})
