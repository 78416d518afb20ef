"""Leftovers are judged by their last activity, never by their start: a backup that has been writing
for longer than the grace period is alive, and sweeping it would destroy it under the writer."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3

from models.backup import S3Location
from models.settings import Settings
from tasks.backup.catalog import remove_incomplete
from tasks.storage import open_store
from tasks.storage.s3 import S3Store


def test_a_multipart_upload_is_judged_by_its_last_part(s3_endpoint: str, bucket: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    store = S3Store(S3Location(bucket=bucket, prefix="nightly"), endpoint_url=s3_endpoint)

    def upload(key: str) -> str:
        started = client.create_multipart_upload(Bucket=bucket, Key=f"nightly/backups/{key}")
        client.upload_part(
            Bucket=bucket, Key=f"nightly/backups/{key}", UploadId=started["UploadId"], PartNumber=1, Body=b"x"
        )
        return str(started["UploadId"])

    idle = upload("20261201T000000Z-aaaaaa/dump.pgcustom")
    time.sleep(2)
    cutoff = datetime.now(UTC) - timedelta(seconds=1)
    busy = upload("20261201T000000Z-bbbbbb/dump.pgcustom")  # a part just now: still writing

    activity = {upload.handle: upload.last_activity for upload in store.open_uploads()}

    assert activity[idle] < cutoff < activity[busy]


def test_a_backup_without_manifest_written_to_recently_is_not_removed(
    settings: Settings, tmp_path: Path
) -> None:
    local = settings.model_copy(update={"backup_url": str(tmp_path / "store")})
    store = open_store(local)
    # Started days ago (its id says so), but its last object was written just now.
    store.put_bytes("backups/20200101T000000Z-cccccc/dump.pgcustom.zst", b"still being written")

    assert remove_incomplete(store, older_than=1.0) == []
    assert [stored.key for stored in store.list_objects("backups")] == [
        "backups/20200101T000000Z-cccccc/dump.pgcustom.zst"
    ]
