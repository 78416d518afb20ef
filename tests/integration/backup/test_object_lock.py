"""Immutable backups with S3 Object Lock, on moto's server over real HTTP.

A backup's dump and manifest are written locked until the retention policy could prune it; its pin and
rehearsal record never are. Pruning leaves a locked backup whole and says until when. A store that
cannot lock refuses the backup in one line, with nothing listed.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy.engine import URL

from flows.backup import recent_rows
from models.backup import S3Location, manifest_key, pin_key, rehearsal_key
from models.retention import ObjectLock, ObjectLockMode, RetentionPolicy
from models.settings import Settings
from tasks.backup.catalog import backup_keys, list_backups, prune
from tasks.storage import ObjectStore, open_store
from tasks.storage.s3 import S3Store
from tests.integration.backup.test_prune import put_backup
from tests.integration.conftest import run_cli
from tests.integration.s3_proxy import faulty_s3_proxy
from tests.integration.storage.test_optional_operations import s3_env

ONLY_THE_NEWEST = {
    "DBOPS_BACKUP_KEEP_LAST": "1",
    "DBOPS_BACKUP_KEEP_DAILY": "0",
    "DBOPS_BACKUP_KEEP_WEEKLY": "0",
    "DBOPS_BACKUP_KEEP_MONTHLY": "0",
}


@pytest.fixture
def locked_bucket(s3_endpoint: str) -> str:
    """A fresh bucket created with object lock enabled (and so versioned)."""
    name = f"dbops-locked-{uuid.uuid4().hex[:10]}"
    s3(s3_endpoint).create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint)


def lock_of(endpoint: str, bucket: str, key: str) -> tuple[str | None, datetime | None]:
    """The lock mode and retain-until date of the object's current version, as the store reports them."""
    head = s3(endpoint).head_object(Bucket=bucket, Key=f"nightly/{key}")
    until = head.get("ObjectLockRetainUntilDate")
    return head.get("ObjectLockMode"), until.astimezone(UTC) if until is not None else None


def store_of(settings: Settings, bucket: str, endpoint: str) -> ObjectStore:
    return open_store(
        settings.model_copy(update={"backup_url": f"s3://{bucket}/nightly", "s3_endpoint_url": endpoint})
    )


def stored_keys(endpoint: str, bucket: str) -> set[str]:
    listed = s3(endpoint).list_objects_v2(Bucket=bucket, Prefix="nightly/")
    return {item["Key"] for item in listed.get("Contents", [])}


def test_a_backups_dump_and_manifest_are_locked_and_its_pin_and_rehearsal_record_are_not(
    seeded_url: URL, cli_env: dict[str, str], s3_endpoint: str, locked_bucket: str, settings: Settings
) -> None:
    env = s3_env(cli_env, locked_bucket, s3_endpoint) | {
        "DBOPS_BACKUP_OBJECT_LOCK": "governance",
        "DBOPS_BACKUP_KEEP_DAILY": "7",
        "DBOPS_BACKUP_KEEP_WEEKLY": "0",
        "DBOPS_BACKUP_KEEP_MONTHLY": "0",
        "DBOPS_TIMEZONE": "UTC",
    }

    backed_up = run_cli("backup", env=env)

    assert backed_up.returncode == 0, backed_up.stderr
    store = store_of(settings, locked_bucket, s3_endpoint)
    [manifest] = list_backups(store)
    seventh_day = midnight(manifest.started_at.date() + timedelta(days=7))
    for key in (manifest.object_key, manifest_key(manifest.backup_id)):
        assert lock_of(s3_endpoint, locked_bucket, key) == ("GOVERNANCE", seventh_day), key

    pinned = run_cli("pin", manifest.backup_id, "--reason", "quarterly audit", env=env)
    assert pinned.returncode == 0, pinned.stderr
    rehearsed = run_cli("rehearse", "--backup", manifest.backup_id, env=env, timeout=300)
    assert rehearsed.returncode == 0, rehearsed.stderr
    for key in (pin_key(manifest.backup_id), rehearsal_key(manifest.backup_id)):
        assert lock_of(s3_endpoint, locked_bucket, key) == (None, None), key

    # Both stay dbops's to rewrite and remove.
    assert run_cli("unpin", manifest.backup_id, env=env).returncode == 0
    assert pin_key(manifest.backup_id) not in backup_keys(store)[manifest.backup_id]
    assert run_cli("pin", manifest.backup_id, "--reason", "audit, again", env=env).returncode == 0
    assert "pinned: audit, again" in run_cli("backups", env=env).stdout


def test_prune_leaves_a_locked_backup_whole_and_says_until_when(
    seeded_url: URL, cli_env: dict[str, str], s3_endpoint: str, locked_bucket: str, settings: Settings
) -> None:
    env = (
        s3_env(cli_env, locked_bucket, s3_endpoint)
        | ONLY_THE_NEWEST
        | {"DBOPS_BACKUP_OBJECT_LOCK": "compliance", "DBOPS_BACKUP_OBJECT_LOCK_MIN_DAYS": "2"}
    )
    first = run_cli("backup", env=env)
    assert first.returncode == 0, first.stderr
    store = store_of(settings, locked_bucket, s3_endpoint)
    [locked] = list_backups(store)
    first_keys = stored_keys(s3_endpoint, locked_bucket)
    _, until = lock_of(s3_endpoint, locked_bucket, locked.object_key)
    assert until is not None
    assert timedelta(days=2) <= until - locked.started_at < timedelta(days=2, seconds=1)
    note = f"retained by object lock until {until.isoformat(timespec='seconds')}"

    second = run_cli("backup", env=env)

    assert second.returncode == 0, second.stderr
    assert "retention: kept 1, removed 0, retained by object lock 1" in second.stdout
    assert f"backup {locked.backup_id}: {note}" in second.stdout
    for arguments in (["prune", "--dry-run"], ["prune"]):
        pruned = run_cli(*arguments, env=env)
        assert pruned.returncode == 0, pruned.stderr
        assert f"keep    {locked.backup_id}  ({note})" in pruned.stdout.splitlines()
        assert "remove" not in pruned.stdout
    plan = prune(store, RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0), "UTC")
    assert plan.locked == {locked.backup_id: until}
    assert plan.remove == []
    [row] = [row for row in recent_rows(store, plan) if row["backup"] == locked.backup_id]
    assert row["retention"] == note

    assert first_keys <= stored_keys(s3_endpoint, locked_bucket), "every object of it is still there"
    versions = s3(endpoint=s3_endpoint).list_object_versions(Bucket=locked_bucket, Prefix="nightly/")
    # A backup's heartbeat is removed when it ends, which in a versioned bucket is a delete marker.
    hidden = [marker["Key"] for marker in versions.get("DeleteMarkers", [])]
    assert [key for key in hidden if not key.endswith("/running.json")] == [], "nothing of it was hidden"
    assert locked.backup_id in {manifest.backup_id for manifest in list_backups(store)}
    assert locked.backup_id in run_cli("backups", env=env).stdout


def test_a_backup_whose_lock_has_ended_is_pruned_behind_delete_markers(
    s3_endpoint: str, locked_bucket: str, tmp_path: Path
) -> None:
    store = S3Store(S3Location(locked_bucket, "nightly"), endpoint_url=s3_endpoint)
    now = datetime.now(UTC)
    old = put_backup(store, now - timedelta(days=3))
    newest = put_backup(store, now)
    # A lock that ends within seconds; dbops itself never sets one so short.
    ends = (now + timedelta(seconds=3)).replace(microsecond=0)
    client = s3(s3_endpoint)
    for key in backup_keys(store)[old]:
        client.put_object_retention(
            Bucket=locked_bucket,
            Key=f"nightly/{key}",
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": ends},
        )
    keep_one = RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)

    assert prune(store, keep_one, "UTC").locked == {old: ends}
    while datetime.now(UTC) <= ends:  # the lock's end is the state waited for
        time.sleep(0.1)
    plan = prune(store, keep_one, "UTC")

    assert plan.remove == [old]
    assert plan.locked == {}
    assert [manifest.backup_id for manifest in list_backups(store)] == [newest]
    versions = client.list_object_versions(Bucket=locked_bucket, Prefix=f"nightly/backups/{old}/")
    assert len(versions.get("DeleteMarkers", [])) == 2, "a versioned bucket hides, and keeps, the versions"
    assert len(versions.get("Versions", [])) == 2


def test_a_multipart_upload_is_locked_too(s3_endpoint: str, locked_bucket: str) -> None:
    store = S3Store(S3Location(locked_bucket, "nightly"), endpoint_url=s3_endpoint)
    lock = ObjectLock(ObjectLockMode.COMPLIANCE, midnight(date.today()) + timedelta(days=9))
    key = "backups/20261125T010000Z-abcdef/dump.pgcustom.zst"
    data = bytes(17 * 1024 * 1024)

    store.put_stream(key, BytesIO(data), expected_size=1, lock=lock)  # 16 MiB parts: two of them

    assert lock_of(s3_endpoint, locked_bucket, key) == ("COMPLIANCE", lock.retain_until)


def test_a_bucket_without_object_lock_refuses_the_backup_before_anything_is_written(
    seeded_url: URL, cli_env: dict[str, str], s3_endpoint: str, bucket: str
) -> None:
    env = s3_env(cli_env, bucket, s3_endpoint) | {"DBOPS_BACKUP_OBJECT_LOCK": "governance"}

    result = run_cli("backup", env=env)

    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        f"dbops: error: DBOPS_BACKUP_OBJECT_LOCK asks for immutable backups, but bucket {bucket} "
    )
    assert "has no object lock; nothing was written" in line
    assert "Hint: back up to a bucket created with object lock enabled" in line
    assert stored_keys(s3_endpoint, bucket) == set()


def test_where_the_lock_configuration_cannot_be_read_the_locked_write_is_refused_in_one_line(
    seeded_url: URL, cli_env: dict[str, str], s3_endpoint: str, bucket: str
) -> None:
    with faulty_s3_proxy(s3_endpoint, "lacking", frozenset({"GetObjectLockConfiguration"})) as proxy:
        env = s3_env(cli_env, bucket, proxy.endpoint) | {"DBOPS_BACKUP_OBJECT_LOCK": "governance"}
        result = run_cli("backup", env=env)
        listed = run_cli("backups", env=env)

    assert proxy.refused == ["GetObjectLockConfiguration"]
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert any("could not check the object lock" in line for line in lines), result.stderr
    error = lines[-1]
    assert error.startswith(
        f"dbops: error: DBOPS_BACKUP_OBJECT_LOCK asks for immutable backups, but bucket {bucket}"
    )
    assert "has no object lock" in error
    assert "Bucket is missing ObjectLockConfiguration" in error
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1:] == [], "nothing is listed"
    assert not any(key.endswith("manifest.json") for key in stored_keys(s3_endpoint, bucket))


def test_a_local_directory_store_refuses_object_lock(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = cli_env | {"DBOPS_BACKUP_URL": str(tmp_path / "backups"), "DBOPS_BACKUP_OBJECT_LOCK": "compliance"}

    result = run_cli("backup", env=env)

    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line == (
        "dbops: error: DBOPS_BACKUP_OBJECT_LOCK asks for immutable backups, but the backup store "
        f"{tmp_path / 'backups'} is a local directory, which cannot lock files against deletion. Hint: set "
        "DBOPS_BACKUP_URL to s3://BUCKET/PREFIX on a bucket created with object lock enabled, or unset "
        "DBOPS_BACKUP_OBJECT_LOCK."
    )
    assert not (tmp_path / "backups").exists()


def test_a_default_retention_on_the_bucket_is_warned_about(s3_endpoint: str, locked_bucket: str) -> None:
    store = S3Store(S3Location(locked_bucket, "nightly"), endpoint_url=s3_endpoint)
    assert store.check_object_lock() is None
    s3(s3_endpoint).put_object_lock_configuration(
        Bucket=locked_bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 30}},
        },
    )

    warning = store.check_object_lock()

    assert warning is not None
    assert warning.startswith(f"bucket {locked_bucket} has a default retention (GOVERNANCE, 30 days): ")
    assert warning.endswith("dbops locks each backup itself, so remove the rule")
