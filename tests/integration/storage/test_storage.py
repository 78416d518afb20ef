"""Both object stores against real backends: moto's S3 server over HTTP, and a local directory."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator

import boto3
import pytest

from models.backup import S3Location
from models.errors import ObjectExistsError, StorageError
from tasks.storage import LocalStore, ObjectStore
from tasks.storage.s3 import S3Store
from tests.integration.s3_proxy import CONDITIONAL_PUT, faulty_s3_proxy

KEY = "backups/20261127T020000Z-abcdef/dump.pgcustom.zst"


class FailingSource(io.RawIOBase):
    """Yields some data, then fails the way a dump whose pg_dump died does."""

    def __init__(self, good_bytes: int) -> None:
        self.left = good_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            raise OSError("pg_dump failed with exit code 1")
        count = min(len(buffer), self.left)
        buffer[:count] = b"x" * count
        self.left -= count
        return count


@pytest.fixture(params=["s3", "local"])
def store(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[ObjectStore]:
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("bucket")
        yield S3Store(S3Location(bucket, "nightly/production"), endpoint_url=endpoint, page_size=10)
    else:
        yield LocalStore(request.getfixturevalue("tmp_path") / "backups-root")


def test_streamed_multipart_round_trip(store: ObjectStore) -> None:
    payload = os.urandom(1024) * (40 * 1024)  # 40 MiB: several parts
    store.put_stream(KEY, io.BytesIO(payload), expected_size=len(payload))

    with store.open_read(KEY) as body:
        assert body.read() == payload
    assert [(item.key, item.size) for item in store.list_objects("backups")] == [(KEY, len(payload))]


def test_listing_is_not_cut_at_one_page(store: ObjectStore) -> None:
    keys = [f"backups/20261127T02{minute:02d}00Z-abcdef/manifest.json" for minute in range(25)]
    for key in keys:
        store.put_bytes(key, b"{}")
    assert sorted(item.key for item in store.list_objects("backups")) == keys


def test_a_failing_source_leaves_nothing_behind(store: ObjectStore) -> None:
    with pytest.raises(OSError, match="pg_dump failed"):
        store.put_stream(
            KEY, io.BufferedReader(FailingSource(20 * 1024 * 1024)), expected_size=64 * 1024 * 1024
        )
    assert list(store.list_objects()) == []
    if isinstance(store, S3Store):
        uploads = store.client.list_multipart_uploads(Bucket=store.location.bucket).get("Uploads", [])
        assert uploads == [], "a failed upload must be aborted, not left to accumulate charges"


def test_an_object_put_as_new_is_never_overwritten(store: ObjectStore) -> None:
    key = "archive/7312345678901234567/platform/audit_logs/2024/05/01/1-700-49cda8e30318.jsonl.gz"
    store.put_new(key, b"production's rows", {"sha256": "production"})

    with pytest.raises(ObjectExistsError, match=r"already exists in .*; it was left as it was"):
        store.put_new(key, b"staging's rows", {"sha256": "staging"})

    assert store.read_bytes(key) == b"production's rows"
    assert store.read_metadata(key) == {"sha256": "production"}
    assert [item.key for item in store.list_objects("archive/")] == [key]


def test_a_store_without_conditional_writes_still_refuses_to_overwrite(s3_endpoint: str, bucket: str) -> None:
    with faulty_s3_proxy(s3_endpoint, "lacking", frozenset({CONDITIONAL_PUT})) as proxy:
        store = S3Store(S3Location(bucket, "logs"), endpoint_url=proxy.endpoint)
        store.put_new("archive/a.jsonl.gz", b"first", {"sha256": "first"})
        store.put_new("archive/b.jsonl.gz", b"second")
        with pytest.raises(ObjectExistsError):
            store.put_new("archive/a.jsonl.gz", b"other")

        assert proxy.refused == [CONDITIONAL_PUT], "asked once, then written with the check before alone"
        assert store.read_bytes("archive/a.jsonl.gz") == b"first"
        assert store.read_metadata("archive/a.jsonl.gz") == {"sha256": "first"}


def test_of_writers_racing_to_create_one_object_exactly_one_wins(store: ObjectStore) -> None:
    key = "archive/7312345678901234567/platform/audit_logs/2024/05/01/1-700-49cda8e30318.jsonl.gz"
    start = threading.Barrier(6)
    outcomes: dict[int, str] = {}

    def write(writer: int) -> None:
        start.wait()
        try:
            store.put_new(key, f"writer {writer}".encode(), {"writer": str(writer)})
            outcomes[writer] = "stored"
        except ObjectExistsError:
            outcomes[writer] = "refused"

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    (winner,) = [writer for writer, outcome in outcomes.items() if outcome == "stored"]
    assert sorted(outcomes.values()).count("refused") == 5
    assert store.read_bytes(key) == f"writer {winner}".encode()


def test_deletion_is_confined_to_backups(store: ObjectStore) -> None:
    store.put_bytes(KEY, b"dump")
    store.put_bytes("notes.txt", b"not ours to delete")
    with pytest.raises(StorageError, match=r"refusing to delete notes\.txt"):
        store.delete([KEY, "notes.txt"])
    assert sorted(item.key for item in store.list_objects()) == [KEY, "notes.txt"]
    store.delete([KEY])
    assert [item.key for item in store.list_objects()] == ["notes.txt"]


def test_objects_outside_the_prefix_are_never_seen_or_touched(s3_endpoint: str, bucket: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.put_object(
        Bucket=bucket, Key="other-app/backups/20261127T020000Z-abcdef/manifest.json", Body=b"{}"
    )
    store = S3Store(S3Location(bucket, "nightly"), endpoint_url=s3_endpoint)
    store.put_bytes("backups/20261127T020000Z-abcdef/manifest.json", b"{}")

    assert [item.key for item in store.list_objects()] == ["backups/20261127T020000Z-abcdef/manifest.json"]
    store.delete(["backups/20261127T020000Z-abcdef/manifest.json"])
    remaining = [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert remaining == ["other-app/backups/20261127T020000Z-abcdef/manifest.json"]


def test_open_uploads_are_listed_and_discarded_within_the_prefix(s3_endpoint: str, bucket: str) -> None:
    store = S3Store(S3Location(bucket, "nightly"), endpoint_url=s3_endpoint)
    store.client.create_multipart_upload(Bucket=bucket, Key=f"nightly/{KEY}")
    store.client.create_multipart_upload(Bucket=bucket, Key="elsewhere/big.bin")

    found = list(store.open_uploads())
    assert [upload.key for upload in found] == [KEY]
    store.discard_upload(found[0])
    left = [upload["Key"] for upload in store.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert left == ["elsewhere/big.bin"]


def test_an_unreachable_endpoint_is_a_clear_storage_error() -> None:
    store = S3Store(S3Location("bucket", "nightly"), endpoint_url="http://127.0.0.1:9")
    store.client.meta.config.retries = {"max_attempts": 1}
    with pytest.raises(StorageError) as failure:
        list(store.list_objects())
    assert "could not list s3://bucket/nightly at http://127.0.0.1:9" in str(failure.value)
    assert "Hint: check DBOPS_BACKUP_URL" in str(failure.value)


def test_parts_grow_as_the_upload_grows(s3_endpoint: str, bucket: str) -> None:
    # Sizes double every 2 parts here (every 1,000 in use): 16, 16, 32 and the last 16 MiB, 4 parts
    # where fixed 16 MiB parts would take 5.
    store = S3Store(S3Location(bucket, "nightly"), endpoint_url=s3_endpoint, parts_per_size=2)
    payload = os.urandom(80 * 1024 * 1024)
    store.put_stream(KEY, io.BytesIO(payload), expected_size=1)
    head = store.client.head_object(Bucket=bucket, Key=f"nightly/{KEY}")
    assert head["ETag"].strip('"').endswith("-4")
    assert store.read_bytes(KEY) == payload
