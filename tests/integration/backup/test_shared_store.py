"""Backups sharing one store with other jobs, on real services: a running backup is visible to every
sweep, a killed one is removed at once by the next backup of its database, a manifest is written only
over parts that are all there, and a pin written while a prune runs saves its backup.

The S3 cases run on moto's server behind the faulty proxy, which holds one request (the first
UploadPart of a multipart upload, a HEAD) so that a backup or a prune stands still at a known point.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy.engine import URL

from models.backup import backup_folder
from models.heartbeat import RUNNING_NAME
from models.retention import RetentionPlan, RetentionPolicy
from models.settings import Settings
from tasks.backup.catalog import backup_keys, list_backups, prune
from tasks.backup.nightly import back_up
from tasks.postgres.embedded import EmbeddedServer, create_database
from tasks.storage import ObjectStore, open_store
from tests.helpers import wait_for
from tests.integration.backup.test_prune import put_backup
from tests.integration.conftest import admin_connection, connect, run_cli, spawn_cli
from tests.integration.s3_proxy import faulty_s3_proxy
from tests.integration.storage.test_optional_operations import s3_env

#: A table whose data part is larger than one multipart part (16 MiB) uncompressed, and a small one,
#: so that a backup in two data parts has a long one beside short ones.
TABLES = """
    CREATE TABLE big AS
        SELECT i, md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text) AS payload
        FROM generate_series(1, 260000) AS i;
    CREATE TABLE small AS SELECT i FROM generate_series(1, 10) AS i;
    ANALYZE;
"""
QUICK_PARTS = {"part-01-pre-data.pgcustom", "part-04-post-data.pgcustom"}
PARTS = {"DBOPS_BACKUP_PARALLELISM": "2", "DBOPS_BACKUP_COMPRESSION": "none"}


def with_tables(url: URL) -> URL:
    with connect(url) as connection:
        connection.execute(TABLES)
    return url


@pytest.fixture
def source(database_url: URL) -> URL:
    return with_tables(database_url)


@pytest.fixture
def other_database(pg_server: EmbeddedServer) -> Iterator[URL]:
    """A second database on the same server, backed up into the same store."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    create_database(pg_server, name)
    url = pg_server.url(name)
    with connect(url) as connection:
        connection.execute("CREATE TABLE note AS SELECT i FROM generate_series(1, 3) AS i")
    yield url
    with admin_connection(pg_server) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint)


@pytest.fixture
def locked_bucket(s3_endpoint: str) -> str:
    name = f"dbops-locked-{uuid.uuid4().hex[:10]}"
    s3(s3_endpoint).create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def open_uploads(endpoint: str, bucket: str) -> list[str]:
    return [upload["Key"] for upload in s3(endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def s3_store(settings: Settings, bucket: str, endpoint: str, **changes: Any) -> ObjectStore:
    return open_store(
        settings.model_copy(
            update={"backup_url": f"s3://{bucket}/nightly", "s3_endpoint_url": endpoint} | changes
        )
    )


def names(store: ObjectStore, backup_id: str) -> set[str]:
    return {found.key.rsplit("/", 1)[1] for found in store.list_objects(backup_folder(backup_id))}


def kill_group(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def test_a_killed_backup_on_s3_leaves_no_upload_once_the_next_backup_of_its_database_ran(
    source: URL, cli_env: dict[str, str], s3_endpoint: str, bucket: str, settings: Settings
) -> None:
    store = s3_store(settings, bucket, s3_endpoint)
    with faulty_s3_proxy(s3_endpoint, "lacking") as proxy:
        proxy.hold_upload_part = True
        killed = spawn_cli(
            "backup", env=s3_env(cli_env, bucket, proxy.endpoint) | PARTS, start_new_session=True
        )
        try:
            assert proxy.part_held.wait(120), "the big data part never opened its upload"
            wait_for(lambda: len(backup_keys(store)) == 1, "the backup's marker to be written")
            [killed_id] = backup_keys(store)
            wait_for(
                lambda: names(store, killed_id) >= QUICK_PARTS,
                "the quick parts to be stored",
            )
        finally:
            kill_group(killed)
    assert open_uploads(s3_endpoint, bucket), "the killed backup left an open multipart upload"

    # The default grace period (6 h) has not passed: only the guard tells that the backup is dead.
    after = run_cli("backup", env=s3_env(cli_env, bucket, s3_endpoint) | PARTS, timeout=300)

    assert after.returncode == 0, after.stderr
    assert f"removed backup {killed_id}" in after.stderr
    assert open_uploads(s3_endpoint, bucket) == []
    assert names(store, killed_id) == set()
    assert [manifest.backup_id for manifest in list_backups(store)] != [killed_id]
    assert len(list_backups(store)) == 1


def test_a_killed_backup_in_a_directory_leaves_no_partial_file_once_the_next_backup_ran(
    source: URL, cli_env: dict[str, str], tmp_path: Path, settings: Settings
) -> None:
    root = tmp_path / "store"
    env = cli_env | PARTS | {"DBOPS_BACKUP_URL": str(root)}
    store = open_store(settings.model_copy(update={"backup_url": str(root)}))

    def partial_data() -> list[Path]:
        return [path for path in root.rglob("*-data-*.partial-*") if path.stat().st_size > 0]

    # zstd at its slowest keeps the big part writing for seconds.
    slow = env | {
        "DBOPS_BACKUP_COMPRESSION": "zstd",
        "DBOPS_BACKUP_COMPRESSION_LEVEL": "19",
        "DBOPS_BACKUP_COMPRESSION_THREADS": "0",
    }
    killed = spawn_cli("backup", env=slow, start_new_session=True)
    try:
        wait_for(lambda: root.exists() and bool(partial_data()), "a data part to be half written", 120)
        [killed_id] = backup_keys(store)
        wait_for(lambda: any("pre-data" in name for name in names(store, killed_id)), "pre-data to be stored")
    finally:
        kill_group(killed)
    assert names(store, killed_id), "the killed backup left objects behind"

    after = run_cli("backup", env=env, timeout=300)

    assert after.returncode == 0, after.stderr
    assert list(root.rglob("*.partial-*")) == []
    assert names(store, killed_id) == set()
    assert not (root / backup_folder(killed_id)).exists()
    assert len(list_backups(store)) == 1


def test_a_running_backup_is_not_swept_by_another_databases_backup_however_old_its_parts(
    source: URL,
    other_database: URL,
    cli_env: dict[str, str],
    s3_endpoint: str,
    bucket: str,
    settings: Settings,
) -> None:
    store = s3_store(settings, bucket, s3_endpoint)
    with ExitStack() as stack:
        proxy = stack.enter_context(faulty_s3_proxy(s3_endpoint, "lacking"))
        proxy.hold_upload_part = True
        running = spawn_cli("backup", env=s3_env(cli_env, bucket, proxy.endpoint) | PARTS)
        stack.callback(running.kill)
        assert proxy.part_held.wait(120), "the big data part never opened its upload"
        wait_for(lambda: len(backup_keys(store)) == 1, "the backup's marker to be written")
        [running_id] = backup_keys(store)
        wait_for(
            lambda: names(store, running_id) >= QUICK_PARTS,
            "the quick parts to be stored",
        )
        before = names(store, running_id)

        # A grace period of 0.36 s, long passed for the running backup's quick parts.
        other = settings.model_copy(
            update={
                "backup_url": f"s3://{bucket}/nightly",
                "s3_endpoint_url": s3_endpoint,
                "backup_incomplete_grace_hours": 0.0001,
                "backup_parallelism": 1,
            }
        )
        back_up(other_database, other, s3_store(settings, bucket, s3_endpoint), prune_after=False)

        assert names(store, running_id) == before
        assert len(open_uploads(s3_endpoint, bucket)) == 1
        proxy.release.set()
        _, err = running.communicate(timeout=300)
    assert running.returncode == 0, err
    assert running_id in [manifest.backup_id for manifest in list_backups(store)]
    assert RUNNING_NAME not in names(store, running_id)


def test_a_part_removed_before_the_manifest_fails_the_backup_with_nothing_listed(
    source: URL, cli_env: dict[str, str], s3_endpoint: str, bucket: str, settings: Settings
) -> None:
    store = s3_store(settings, bucket, s3_endpoint)
    with ExitStack() as stack:
        proxy = stack.enter_context(faulty_s3_proxy(s3_endpoint, "lacking"))
        proxy.hold_upload_part = True
        running = spawn_cli("backup", env=s3_env(cli_env, bucket, proxy.endpoint) | PARTS)
        stack.callback(running.kill)
        assert proxy.part_held.wait(120), "the big data part never opened its upload"
        wait_for(lambda: len(backup_keys(store)) == 1, "the backup's marker to be written")
        [backup_id] = backup_keys(store)
        pre_data = f"{backup_folder(backup_id)}/part-01-pre-data.pgcustom"
        wait_for(lambda: store.stat(pre_data) is not None, "pre-data to be stored")
        store.delete([pre_data])
        proxy.release.set()
        _, err = running.communicate(timeout=300)

    assert running.returncode == 1, err
    assert f"part pre-data of backup {backup_id} is missing" in err
    assert "the backup is not listed" in err
    assert list_backups(store) == []
    assert names(store, backup_id) == set()


def test_a_pin_written_while_prune_runs_saves_the_backup(
    cli_env: dict[str, str], s3_endpoint: str, bucket: str, settings: Settings
) -> None:
    direct = s3_store(settings, bucket, s3_endpoint)
    old = put_backup(direct, datetime.now(UTC) - timedelta(days=40))
    put_backup(direct, datetime.now(UTC))
    policy = RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    plans: list[RetentionPlan] = []
    with faulty_s3_proxy(s3_endpoint, "lacking") as proxy:
        # Prune asks the old backup's objects for their lock after its plan, before any delete.
        proxy.hold_head = "manifest.json"
        pruning = threading.Thread(
            target=lambda: plans.append(prune(s3_store(settings, bucket, proxy.endpoint), policy, "UTC"))
        )
        pruning.start()
        assert proxy.head_held.wait(60), "prune never asked for the old backup's lock"

        pinned = run_cli("pin", old, "--reason", "legal hold", env=s3_env(cli_env, bucket, s3_endpoint))

        proxy.release.set()
        pruning.join(timeout=120)
    assert pinned.returncode == 0, pinned.stderr
    [plan] = plans
    assert old not in plan.remove
    assert plan.keep[old] == ["pinned: legal hold"]
    assert old in [manifest.backup_id for manifest in list_backups(direct)]


def test_a_manifest_the_store_kept_without_its_lock_is_removed_so_the_backup_is_truly_not_listed(
    source: URL,
    cli_env: dict[str, str],
    s3_endpoint: str,
    locked_bucket: str,
    settings: Settings,
) -> None:
    with faulty_s3_proxy(s3_endpoint, "lacking") as proxy:
        proxy.unlocked_head = "manifest.json"
        env = s3_env(cli_env, locked_bucket, proxy.endpoint) | {"DBOPS_BACKUP_OBJECT_LOCK": "governance"}
        result = run_cli("backup", env=env, timeout=300)

    assert result.returncode == 2, result.stderr
    assert "manifest.json without the object lock" in result.stderr
    assert "the backup is not listed" in result.stderr
    store = s3_store(settings, locked_bucket, s3_endpoint)
    assert list_backups(store) == []
