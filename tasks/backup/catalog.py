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
    BackupSource,
    backup_folder,
    backup_id_of,
    backup_time,
    manifest_key,
    pin_key,
    rehearsal_key,
    stored_parts,
    timelines,
)
from models.errors import BackupError, ConfigurationError, StorageError
from models.heartbeat import BackupHeartbeat, Verdict, judge, running_key
from models.rehearsal import RehearsalRecord
from models.retention import Dated, ObjectLock, RetentionPlan, RetentionPolicy, plan_retention
from tasks.storage import ObjectStore, StoredObject
from tasks.storage.base import OpenUpload

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
        if pin_key(backup_id) in objects and (read := _read_pin(store, backup_id)) is not None:
            found[backup_id] = read
    return found


def _read_pin(store: ObjectStore, backup_id: str) -> BackupPin | None:
    if store.stat(pin_key(backup_id)) is None:
        return None
    try:
        return BackupPin.model_validate_json(store.read_bytes(pin_key(backup_id)))
    except ValidationError:
        return BackupPin(reason="unreadable pin", pinned_at=backup_time(backup_id))


def pin(store: ObjectStore, backup_id: str, reason: str) -> BackupPin:
    """Keep *backup_id* from every prune until it is unpinned."""
    if not reason.strip():
        raise ConfigurationError("a pin needs a reason", hint="pass --reason TEXT: why this backup must stay")
    _complete(store, backup_id)
    pinned = BackupPin(reason=reason.strip(), pinned_at=datetime.now(UTC))
    store.put_bytes(pin_key(backup_id), pinned.model_dump_json().encode())
    # A prune reads the pin right before deleting; one that had already begun deleting this
    # backup shows here, and the pin is not reported as holding what is gone.
    if store.stat(manifest_key(backup_id)) is None:
        store.delete([pin_key(backup_id)])
        raise ConfigurationError(
            f"backup {backup_id} was pruned while it was being pinned", hint="dbops backups lists the others"
        )
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
    guarded_source: BackupSource | None = None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> list[str]:
    """Delete the backups that never got a manifest and are not running; returns their ids.

    A backup is judged by :func:`models.heartbeat.judge`: never touched while its heartbeat is
    fresh; removed at once when it is a dead backup of *guarded_source* (the database whose guard
    the caller holds); otherwise once nothing was written to it, uploads in progress included, for
    *older_than* hours. With it go its uploads in progress (open multipart uploads, temporary files).
    Uploads outside any backup follow the grace period. A locked object of a backup that never got
    its manifest is debris all the same: in an object lock bucket its delete leaves a delete marker,
    and the locked version goes when its lock has ended and the lifecycle rule expires it.
    """
    log = logger or _log
    now = datetime.now(UTC)
    grace = timedelta(hours=older_than)
    objects = _objects_by_backup(store)
    uploads: dict[str | None, list[OpenUpload]] = defaultdict(list)
    try:
        for upload in store.open_uploads():
            uploads[backup_id_of(upload.key)].append(upload)
    except StorageError as error:  # housekeeping: it never fails the backup it tidies up before
        log.warning("skipped sweeping interrupted uploads: %s", error.one_line())
    removed = []
    for backup_id in sorted(set(objects) | {key for key in uploads if key is not None}):
        found = objects.get(backup_id, [])
        keys = [stored.key for stored in found]
        if manifest_key(backup_id) in keys:
            continue
        last_activity = max(
            [
                backup_time(backup_id),
                *(stored.modified for stored in found),
                *(upload.last_activity for upload in uploads.get(backup_id, [])),
            ]
        )
        heartbeat = _heartbeat(store, backup_id, keys)
        verdict = judge(heartbeat, last_activity, now, grace, guarded_source)
        if verdict in (Verdict.RUNNING, Verdict.RECENT):
            continue
        try:
            _remove_leftover(store, backup_id, keys, uploads.get(backup_id, []))
        except StorageError as error:  # housekeeping: the next run tries again
            log.warning("could not remove incomplete backup %s: %s", backup_id, error.one_line())
            continue
        removed.append(backup_id)
        if heartbeat is not None and verdict is Verdict.DEAD:
            log.warning(
                "removed backup %s of %s: stopped before its manifest (%s pid %d)",
                backup_id,
                heartbeat.source.describe(),
                heartbeat.host,
                heartbeat.pid,
            )
        else:
            log.warning("removed incomplete backup %s (no manifest after %.1f h)", backup_id, older_than)
    stray = [upload for upload in uploads.get(None, []) if upload.last_activity < now - grace]
    try:
        for upload in stray:
            store.discard_upload(upload)
    except StorageError as error:
        log.warning("skipped sweeping interrupted uploads: %s", error.one_line())
    else:
        if stray:
            log.warning("aborted %d interrupted upload(s) in %s", len(stray), store.describe())
    return removed


def _remove_leftover(store: ObjectStore, backup_id: str, keys: list[str], uploads: list[OpenUpload]) -> None:
    """Its uploads in progress, then its objects, the marker last: an interrupted removal leaves the
    rest still recognised as this backup's."""
    for upload in uploads:
        store.discard_upload(upload)
    # Asked once more right before deleting: a manifest written meanwhile makes it a backup.
    if store.stat(manifest_key(backup_id)) is not None:
        return
    marker = running_key(backup_id)
    store.delete([key for key in keys if key != marker])
    store.delete([key for key in keys if key == marker])


def _heartbeat(store: ObjectStore, backup_id: str, keys: list[str]) -> BackupHeartbeat | None:
    """The backup's marker; an unreadable one counts as none (judged by its last activity)."""
    if running_key(backup_id) not in keys:
        return None
    try:
        return BackupHeartbeat.model_validate_json(store.read_bytes(running_key(backup_id)))
    except (ValidationError, StorageError):
        return None


def write_manifest(store: ObjectStore, manifest: BackupManifest, lock: ObjectLock | None) -> None:
    """Write the manifest, once every part it lists is confirmed in the store with its size.

    A sweep or a hand may have removed a part since it was written; a manifest listing it would make
    a backup that cannot restore, counted by retention as the newest.
    """
    for part in stored_parts(manifest):
        found = store.stat(part.object_key)
        if found is None or found.size != part.stored_bytes:
            raise BackupError(
                f"part {part.name} of backup {manifest.backup_id} is "
                + ("missing from" if found is None else f"{found.size} bytes, not {part.stored_bytes}, in")
                + f" {store.describe()}; the backup is not listed",
                hint="was it removed by hand or by another tool? back up again",
            )
    store.put_bytes(manifest_key(manifest.backup_id), manifest.model_dump_json(indent=2).encode(), lock=lock)


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
    for backup_id in list(plan.remove):
        # Read again right before the delete: a pin written since the listing (by ``dbops pin``
        # on any machine) still saves the backup.
        late_pin = _read_pin(store, backup_id)
        if late_pin is not None:
            plan.remove.remove(backup_id)
            plan.keep[backup_id] = [f"pinned: {late_pin.reason}"]
            log.info("backup %s was pinned during the prune and is kept", backup_id)
            continue
        manifest = f"{backup_folder(backup_id)}/{MANIFEST_NAME}"
        store.delete([manifest])
        store.delete([key for key in keys.get(backup_id, []) if key != manifest])
        log.info("pruned backup %s", backup_id)
    return plan


def backup_locked_until(store: ObjectStore, keys: list[str], now: datetime) -> datetime | None:
    """When the last object lock among *keys* ends, if that is after *now*; None when none holds."""
    ends = [until for until in map(store.locked_until, keys) if until is not None and until > now]
    return max(ends, default=None)
