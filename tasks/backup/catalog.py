"""What the store holds: complete backups (those with a manifest), and the debris of failed ones."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from models.backup import (
    MANIFEST_NAME,
    BackupManifest,
    BackupPin,
    backup_folder,
    backup_id_of,
    backup_time,
    pin_key,
    rehearsal_key,
    timelines,
)
from models.errors import BackupError, ConfigurationError, StorageError
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


def pins(store: ObjectStore, keys: dict[str, list[str]] | None = None) -> dict[str, BackupPin]:
    """The pin of each pinned backup (an unreadable pin still pins: it is read as "unreadable pin")."""
    found = {}
    for backup_id, objects in (keys or backup_keys(store)).items():
        if pin_key(backup_id) in objects:
            try:
                found[backup_id] = BackupPin.model_validate_json(store.read_bytes(pin_key(backup_id)))
            except ValidationError:
                found[backup_id] = BackupPin(reason="unreadable pin", pinned_at=backup_time(backup_id))
    return found


def pin(store: ObjectStore, backup_id: str, reason: str) -> BackupPin:
    """Keep *backup_id* from every prune until it is unpinned."""
    if not reason.strip():
        raise ConfigurationError("a pin needs a reason", hint="pass --reason TEXT: why this backup must stay")
    _complete(store, backup_id)
    pinned = BackupPin(reason=reason.strip(), pinned_at=datetime.now(UTC))
    store.put_bytes(pin_key(backup_id), pinned.model_dump_json().encode())
    return pinned


def unpin(store: ObjectStore, backup_id: str) -> bool:
    """Let retention judge *backup_id* again; False when it was not pinned."""
    keys = _complete(store, backup_id)
    if pin_key(backup_id) not in keys:
        return False
    store.delete([pin_key(backup_id)])
    return True


def _complete(store: ObjectStore, backup_id: str) -> list[str]:
    keys = backup_keys(store).get(backup_id, [])
    if f"{backup_folder(backup_id)}/{MANIFEST_NAME}" not in keys:
        raise ConfigurationError(
            f"there is no complete backup {backup_id} in {store.describe()}",
            hint="dbops backups lists the complete backups",
        )
    return keys


def _passed(record: RehearsalRecord | None) -> bool:
    return record is not None and record.passed


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
    Interrupted multipart uploads of the same age are aborted too. A locked dump of a backup that never
    got its manifest is debris all the same: in an object lock bucket its delete leaves a delete
    marker, and the locked version goes when its lock has ended and the lifecycle rule expires it.
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

    A backup any of whose objects is still under object lock is left whole and reported in
    ``plan.locked``, never as a failure: that is judged before anything of it is deleted, dry run
    included. Asking first matters because an object lock bucket is versioned, and a delete without
    a version id (dbops never deletes versions) does not fail on a lock: it succeeds with a delete
    marker that hides the object while the locked version stays. Deleting the manifest and then
    meeting a locked dump would leave an incomplete backup; hiding a locked backup would take it out
    of every listing while it still costs storage. Once its lock has ended a backup is deleted as any
    other, which in such a bucket also means delete markers over versions that stay: a lifecycle rule
    that expires noncurrent versions frees their storage.
    """
    log = logger or _log
    keys = backup_keys(store)
    pinned, records = pins(store, keys), rehearsals(store, keys)
    plan = RetentionPlan()
    for timeline in timelines(list_backups(store, keys)).values():
        part = plan_retention(
            [Dated(manifest.backup_id, manifest.started_at) for manifest in timeline], policy, timezone
        )
        proven = [manifest.backup_id for manifest in timeline if _passed(records.get(manifest.backup_id))]
        kept_anyway = {
            backup_id: f"pinned: {pinned[backup_id].reason}"
            for backup_id in part.remove
            if backup_id in pinned
        }
        if proven and proven[0] in part.remove:  # the newest one a rehearsal proved restorable
            kept_anyway.setdefault(proven[0], "newest rehearsed")
        plan.keep |= part.keep | {backup_id: [rule] for backup_id, rule in kept_anyway.items()}
        plan.remove += [backup_id for backup_id in part.remove if backup_id not in kept_anyway]
    now = datetime.now(UTC)
    for backup_id in plan.remove:
        until = backup_locked_until(store, keys.get(backup_id, []), now)
        if until is not None:
            plan.locked[backup_id] = until
    plan.remove = [backup_id for backup_id in plan.remove if backup_id not in plan.locked]
    for backup_id, note in plan.lock_notes().items():
        log.info("backup %s is %s", backup_id, note)
    if dry_run:
        return plan
    for backup_id in plan.remove:
        manifest = f"{backup_folder(backup_id)}/{MANIFEST_NAME}"
        store.delete([manifest])
        store.delete([key for key in keys.get(backup_id, []) if key != manifest])
        log.info("pruned backup %s", backup_id)
    return plan


def backup_locked_until(store: ObjectStore, keys: list[str], now: datetime) -> datetime | None:
    """When the last object lock among *keys* ends, if that is after *now*; None when none holds."""
    ends = [until for until in map(store.locked_until, keys) if until is not None and until > now]
    return max(ends, default=None)
