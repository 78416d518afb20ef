"""Retention and cleanup on real stores: only whole backups go, manifests first, nothing else touched."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models.backup import BackupManifest, S3Location, dump_key, manifest_key, new_backup_id
from models.compression import Compression
from models.retention import RetentionPolicy
from tasks.backup.catalog import list_backups, prune, remove_incomplete
from tasks.storage import LocalStore, ObjectStore
from tasks.storage.s3 import S3Store

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(params=["s3", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        return S3Store(S3Location(request.getfixturevalue("bucket"), "nightly"), endpoint_url=endpoint)
    return LocalStore(tmp_path / "backups")


def put_backup(store: ObjectStore, taken: datetime, *, complete: bool = True) -> str:
    backup_id = new_backup_id(taken, uuid.uuid4().hex)
    key = dump_key(backup_id, Compression.ZSTD, encrypted=False)
    store.put_bytes(key, b"dump bytes")
    if complete:
        manifest = BackupManifest(
            backup_id=backup_id,
            database="db",
            server_version="18.6",
            pg_dump_version="18.6",
            compression=Compression.ZSTD,
            compression_level=3,
            object_key=key,
            stored_bytes=10,
            dump_bytes=10,
            sha256="0" * 64,
            started_at=taken,
            finished_at=taken,
            duration_seconds=1.0,
            alembic_revision="0002",
            row_counts={},
        )
        store.put_bytes(manifest_key(backup_id), manifest.model_dump_json().encode())
    return backup_id


def test_prune_removes_whole_backups_and_nothing_else(store: ObjectStore) -> None:
    daily = [put_backup(store, NOW - timedelta(days=day)) for day in range(10)]
    in_progress = put_backup(store, NOW, complete=False)
    store.put_bytes("notes.txt", b"an operator's file")
    policy = RetentionPolicy(keep_last=2, keep_daily=4, keep_weekly=0, keep_monthly=0)

    preview = prune(store, policy, "UTC", dry_run=True)
    assert len(list(store.list_objects())) == 10 * 2 + 1 + 1, "a dry run deletes nothing"

    plan = prune(store, policy, "UTC")
    assert plan == preview
    assert sorted(plan.keep) == sorted(daily[:4])
    assert [manifest.backup_id for manifest in list_backups(store)] == daily[:4]
    remaining = {stored.key for stored in store.list_objects()}
    assert "notes.txt" in remaining
    assert dump_key(in_progress, Compression.ZSTD, encrypted=False) in remaining, (
        "an incomplete backup is not prune's"
    )
    assert not any(backup_id in key for key in remaining for backup_id in daily[4:])
    assert prune(store, policy, "UTC").remove == []


def test_incomplete_backups_go_only_after_the_grace_period(store: ObjectStore) -> None:
    """Judged by their last write: both started hours ago, only one has been idle past the grace."""
    stale = put_backup(store, NOW - timedelta(hours=8), complete=False)
    complete = put_backup(store, NOW - timedelta(days=3))
    time.sleep(2.5)  # the grace period below is 1.8 s
    recent = put_backup(store, NOW - timedelta(hours=7), complete=False)

    assert remove_incomplete(store, older_than=0.0005) == [stale]
    left = {stored.key.split("/")[1] for stored in store.list_objects()}
    assert left == {recent, complete}
