"""What the store holds: complete backups (those with a manifest), and the debris of failed ones."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from models.backup import (
    MANIFEST_NAME,
    BackupManifest,
    backup_folder,
    backup_id_of,
    backup_time,
    rehearsal_key,
    timelines,
)
from models.errors import BackupError, StorageError
from models.rehearsal import RehearsalRecord
from models.retention import Dated, RetentionPlan, RetentionPolicy, plan_retention
from tasks.storage import ObjectStore, StoredObject

_log = logging.getLogger(__name__)


def _objects_by_backup(store: ObjectStore) -> dict[str, list[StoredObject]]:
    objects: dict[str, list[StoredObject]] = defaultdict(list)
    for stored in store.list_objects("backups"):
        backup_id = backup_id_of(stored.key)
        if backup_id is not None:
            objects[backup_id].append(stored)
    return dict(objects)


def backup_keys(store: ObjectStore) -> dict[str, list[str]]:
    """Every object of every backup, by backup id (one paginated listing)."""
    return {
        backup_id: [stored.key for stored in found] for backup_id, found in _objects_by_backup(store).items()
    }


def complete_backup_ids(keys: dict[str, list[str]]) -> list[str]:
    """The ids of complete backups (those with a manifest), newest first, from :func:`backup_keys`."""
    return sorted(
        (
            backup_id
            for backup_id, found in keys.items()
            if f"{backup_folder(backup_id)}/{MANIFEST_NAME}" in found
        ),
        reverse=True,
    )


def list_backups(store: ObjectStore, keys: dict[str, list[str]] | None = None) -> list[BackupManifest]:
    """Complete backups, newest first; a backup without a manifest is not a backup."""
    return [read_manifest(store, backup_id) for backup_id in complete_backup_ids(keys or backup_keys(store))]


def rehearsals(store: ObjectStore, keys: dict[str, list[str]] | None = None) -> dict[str, RehearsalRecord]:
    """The latest rehearsal record of each backup that has one (unreadable records are skipped)."""
    records = {}
    for backup_id, found in (keys or backup_keys(store)).items():
        if rehearsal_key(backup_id) in found:
            try:
                records[backup_id] = RehearsalRecord.model_validate_json(
                    store.read_bytes(rehearsal_key(backup_id))
                )
            except ValidationError:
                _log.warning("the rehearsal record of backup %s is unreadable", backup_id)
    return records


def read_manifest(store: ObjectStore, backup_id: str) -> BackupManifest:
    raw = store.read_bytes(f"{backup_folder(backup_id)}/{MANIFEST_NAME}")
    try:
        return BackupManifest.model_validate_json(raw)
    except ValidationError:
        raise BackupError(
            f"the manifest of backup {backup_id} in {store.describe()} is unreadable",
            hint="the backup cannot be trusted; take a new one",
        ) from None


def remove_incomplete(
    store: ObjectStore,
    *,
    older_than: float,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> list[str]:
    """Delete backups that never got a manifest, once they are *older_than* hours old.

    The grace period keeps a backup that is still being written (by another worker) out of reach.
    Interrupted multipart uploads of the same age are aborted too.
    """
    log = logger or _log
    cutoff = datetime.now(UTC) - timedelta(hours=older_than)
    removed = []
    for backup_id, objects in _objects_by_backup(store).items():
        keys = [stored.key for stored in objects]
        complete = f"{backup_folder(backup_id)}/{MANIFEST_NAME}" in keys
        # Judged by its last write, not its start: a backup still writing is not debris.
        last_activity = max([backup_time(backup_id), *(stored.modified for stored in objects)])
        if not complete and last_activity < cutoff:
            store.delete(keys)
            removed.append(backup_id)
            log.warning("removed incomplete backup %s (no manifest after %.1f h)", backup_id, older_than)
    try:
        swept = store.sweep_incomplete_uploads(cutoff)
    except StorageError as error:  # housekeeping: it never fails the backup it tidies up before
        log.warning("skipped sweeping interrupted uploads: %s", error.one_line())
        return removed
    if swept:
        log.warning("aborted %d interrupted upload(s) in %s", swept, store.describe())
    return removed


def prune(
    store: ObjectStore,
    policy: RetentionPolicy,
    timezone: str,
    *,
    dry_run: bool = False,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> RetentionPlan:
    """Apply the retention policy to the complete backups in *store*, to each source database apart.

    One store may hold the backups of several databases (staging's beside production's): each has
    its own daily, weekly and monthly points, and one never thins out another's. Each removed backup
    loses its manifest first, so an interrupted prune can leave a dump without a manifest
    (incomplete, swept later) but never a manifest pointing at a deleted dump.
    """
    log = logger or _log
    plan = RetentionPlan()
    for timeline in timelines(list_backups(store)).values():
        part = plan_retention(
            [Dated(manifest.backup_id, manifest.started_at) for manifest in timeline], policy, timezone
        )
        plan.keep |= part.keep
        plan.remove += part.remove
    if dry_run:
        return plan
    keys = backup_keys(store)
    for backup_id in plan.remove:
        manifest = f"{backup_folder(backup_id)}/{MANIFEST_NAME}"
        store.delete([manifest])
        store.delete([key for key in keys.get(backup_id, []) if key != manifest])
        log.info("pruned backup %s", backup_id)
    return plan
