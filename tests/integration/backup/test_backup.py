"""Backups against real services: PostgreSQL, pg_dump/pg_restore, moto's S3 server, a local directory."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import boto3
import psycopg
import pyrage
import pytest
import zstandard
from botocore.exceptions import BotoCoreError, ClientError
from psycopg import sql
from sqlalchemy.engine import URL

from models.backup import BackupManifest
from models.compression import Compression
from models.errors import BackupError, StorageError
from models.settings import Settings
from tasks.backup.catalog import list_backups
from tasks.backup.dump import backup
from tasks.postgres.binaries import find_program
from tasks.postgres.command import run_pg_program
from tasks.postgres.embedded import EmbeddedServer, create_database
from tasks.postgres.libpq import child_environment, conninfo
from tasks.seed.synth import synth
from tasks.storage import ObjectStore, open_store
from tests.conftest import require_tool
from tests.helpers import synth_plan
from tests.integration.conftest import connect, run_cli, spawn_cli, start_s3_server


@pytest.fixture(params=["s3", "local"])
def backup_settings(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Settings:
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("bucket")
        return settings.model_copy(
            update={"backup_url": f"s3://{bucket}/nightly", "s3_endpoint_url": endpoint}
        )
    return settings.model_copy(update={"backup_url": str(tmp_path / "backups")})


def add_audit_logs(url: URL, settings: Settings, count: int) -> None:
    """More volume, so that a dump takes long enough for something to happen while it runs."""
    synth(url, settings, synth_plan(audit_logs=count, seed=count))


def stored_dump(store: ObjectStore, manifest: BackupManifest, destination: Path) -> Path:
    """Download, check the sha256, decompress: the plain pg_dump output, as an operator would."""
    with store.open_read(manifest.object_key) as body:
        stored = body.read()
    assert hashlib.sha256(stored).hexdigest() == manifest.sha256
    assert len(stored) == manifest.stored_bytes
    dump = destination / f"{manifest.backup_id}.pgcustom"
    dump.write_bytes(zstandard.ZstdDecompressor().decompressobj().decompress(stored))
    return dump


def dump_listing(dump: Path, pg_bindir: Path) -> str:
    """``pg_restore --list``: the dump's table of contents, which only a readable dump has."""
    program = str(find_program("pg_restore", pg_bindir))
    return subprocess.run([program, "--list", str(dump)], capture_output=True, text=True, check=True).stdout


def restore_and_count(dump: Path, server: EmbeddedServer, pg_bindir: Path) -> dict[str, int]:
    name = f"restored_{uuid.uuid4().hex[:8]}"
    create_database(server, name)
    target = server.url(name)
    with child_environment(target) as environment:
        run_pg_program(
            find_program("pg_restore", pg_bindir),
            ["--dbname", conninfo(target, purpose="test"), str(dump)],
            environment=environment,
        )
    with connect(target) as connection:
        tables = [
            str(row[0])
            for row in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        return {table: _count(connection, table) for table in tables}


def _count(connection: psycopg.Connection[tuple[object, ...]], table: str) -> int:
    row = connection.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_round_trip_restores_exactly_what_the_manifest_says(
    seeded_url: URL, backup_settings: Settings, pg_server: EmbeddedServer, pg_bindir: Path, tmp_path: Path
) -> None:
    store = open_store(backup_settings)
    manifest = backup(seeded_url, backup_settings, store)

    assert [listed.backup_id for listed in list_backups(store)] == [manifest.backup_id]
    assert manifest.alembic_revision == "0002"
    assert manifest.row_counts["applications"] == 300
    assert manifest.stored_bytes < manifest.dump_bytes
    dump = stored_dump(store, manifest, tmp_path)
    assert "TABLE DATA public audit_logs" in dump_listing(dump, pg_bindir)
    assert restore_and_count(dump, pg_server, pg_bindir) == manifest.row_counts


def test_rows_written_during_the_dump_never_break_the_manifest(
    seeded_url: URL, backup_settings: Settings, pg_server: EmbeddedServer, pg_bindir: Path, tmp_path: Path
) -> None:
    add_audit_logs(seeded_url, backup_settings, 300_000)
    stop = threading.Event()
    written = [0]

    def application() -> None:
        with connect(seeded_url) as connection:
            while not stop.is_set():
                connection.execute(
                    "INSERT INTO audit_logs (action, entity_type) "
                    "SELECT 'user.login', 'user' FROM generate_series(1, 50)"
                )
                written[0] += 50

    writer = threading.Thread(target=application)
    writer.start()
    try:
        manifest = backup(seeded_url, backup_settings, open_store(backup_settings))
    finally:
        stop.set()
        writer.join()

    assert written[0] > 0, "the writer must have run during the dump"
    restored = restore_and_count(
        stored_dump(open_store(backup_settings), manifest, tmp_path), pg_server, pg_bindir
    )
    assert restored == manifest.row_counts
    with connect(seeded_url) as connection:
        assert _count(connection, "audit_logs") > manifest.row_counts["audit_logs"]


def test_a_failing_pg_dump_leaves_no_backup(seeded_url: URL, backup_settings: Settings) -> None:
    with connect(seeded_url) as connection:
        connection.execute("CREATE ROLE limited_backup LOGIN PASSWORD 'limited-password'")
        connection.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO limited_backup")
        connection.execute("REVOKE SELECT ON audit_logs FROM limited_backup")
    limited = seeded_url.set(username="limited_backup", password="limited-password")
    store = open_store(backup_settings)
    try:
        with pytest.raises(BackupError) as failure:
            backup(limited, backup_settings, store)
    finally:
        with connect(seeded_url) as connection:
            connection.execute("DROP OWNED BY limited_backup")
            connection.execute("DROP ROLE limited_backup")

    assert "the backup of" in str(failure.value)  # refused by its first lock, before any pg_dump
    assert "permission denied for table audit_logs" in str(failure.value)
    assert list_backups(store) == []
    assert [stored.key for stored in store.list_objects()] == []


def test_the_password_never_reaches_a_command_line(seeded_url: URL, backup_settings: Settings) -> None:
    add_audit_logs(seeded_url, backup_settings, 200_000)
    password = str(seeded_url.password).encode()
    seen_pg_dump, leaked = [False], []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for entry in Path("/proc").iterdir():
                try:
                    command_line = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if b"pg_dump" in command_line:
                    seen_pg_dump[0] = True
                if password in command_line:
                    leaked.append(command_line)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        manifest = backup(seeded_url, backup_settings, open_store(backup_settings))
    finally:
        done.set()
        watcher.join()
    assert seen_pg_dump[0], "the watcher must have seen pg_dump running"
    assert leaked == []
    assert password.decode() not in manifest.model_dump_json()


def test_the_age_command_line_tool_decrypts_an_encrypted_backup(
    seeded_url: URL, settings: Settings, tmp_path: Path, pg_bindir: Path
) -> None:
    age = require_tool("age", "age decrypts encrypted backups")
    identity = pyrage.x25519.Identity.generate()
    key_file = tmp_path / "key.txt"
    key_file.write_text(str(identity) + "\n")
    encrypted = settings.model_copy(
        update={
            "backup_url": str(tmp_path / "backups"),
            "backup_age_recipients": [str(identity.to_public())],
        }
    )
    store = open_store(encrypted)
    manifest = backup(seeded_url, encrypted, store)

    assert manifest.object_key.endswith(".zst.age")
    assert len(manifest.encrypted_for) == 1
    assert manifest.encrypted_for[0].startswith("sha256:")
    with store.open_read(manifest.object_key) as body:
        ciphertext = body.read()
    assert ciphertext.startswith(b"age-encryption.org/v1")
    decrypted = subprocess.run(
        [age, "--decrypt", "--identity", str(key_file)], input=ciphertext, capture_output=True, check=True
    ).stdout
    dump = tmp_path / "dump.pgcustom"
    dump.write_bytes(zstandard.ZstdDecompressor().decompressobj().decompress(decrypted))
    assert "TABLE DATA public users" in dump_listing(dump, pg_bindir)


def test_a_stopped_s3_endpoint_fails_cleanly(seeded_url: URL, settings: Settings) -> None:
    dead = settings.model_copy(
        update={"backup_url": "s3://bucket/nightly", "s3_endpoint_url": "http://127.0.0.1:9"}
    )
    started = time.monotonic()
    with pytest.raises(StorageError) as failure:
        backup(seeded_url, dead, open_store(dead))
    assert "s3://bucket/nightly at http://127.0.0.1:9" in str(failure.value)
    assert time.monotonic() - started < 120


@pytest.mark.any_major  # the store's cleanup after a killed run: the same on every major
def test_killed_mid_upload_leaves_nothing_listed_and_the_next_run_cleans_up(
    seeded_url: URL, settings: Settings, s3_endpoint: str, bucket: str, cli_env: dict[str, str]
) -> None:
    add_audit_logs(seeded_url, settings, 1_500_000)
    env = cli_env | {
        "DBOPS_BACKUP_URL": f"s3://{bucket}/nightly",
        "DBOPS_S3_ENDPOINT_URL": s3_endpoint,
        "DBOPS_BACKUP_COMPRESSION": "none",
        "DBOPS_BACKUP_INCOMPLETE_GRACE_HOURS": "0.0001",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    run = spawn_cli(
        "backup", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not client.list_multipart_uploads(Bucket=bucket).get("Uploads"):
        time.sleep(0.05)
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads"), "the upload must have started"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()

    store = open_store(
        settings.model_copy(update={"backup_url": f"s3://{bucket}/nightly", "s3_endpoint_url": s3_endpoint})
    )
    assert list_backups(store) == []
    again = run_cli("backup", env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert len(list_backups(store)) == 1
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.any_major  # a failing store and a stopped child process: the same on every major
def test_an_endpoint_that_dies_mid_upload_fails_cleanly_and_stops_pg_dump(
    seeded_url: URL, settings: Settings, s3_endpoint: str
) -> None:
    """A private S3 server (the session's stays up for other tests), killed once the upload started."""
    add_audit_logs(seeded_url, settings, 1_500_000)
    moto, endpoint = start_s3_server()
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="dying")
        dying = settings.model_copy(
            update={
                "backup_url": "s3://dying/nightly",
                "s3_endpoint_url": endpoint,
                "backup_compression": Compression.NONE,
            }
        )
        client = boto3.client("s3", endpoint_url=endpoint)

        def kill_when_uploading() -> None:
            with contextlib.suppress(BotoCoreError, ClientError):
                while moto.poll() is None and not client.list_multipart_uploads(Bucket="dying").get(
                    "Uploads"
                ):
                    time.sleep(0.02)
            moto.kill()

        killer = threading.Thread(target=kill_when_uploading)
        killer.start()
        with pytest.raises(StorageError) as failure:
            backup(seeded_url, dying, open_store(dying))
        killer.join()
    finally:
        moto.kill()
        moto.wait()

    assert f"s3://dying/nightly at {endpoint}" in str(failure.value)
    # This test's pg_dump only: another test (a parallel worker's) may be dumping its own database.
    database = f"dbname={seeded_url.database}".encode()
    running = [
        entry
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and b"pg_dump" in _command_line(entry)
        and b"--snapshot" in _command_line(entry)
        and database in _command_line(entry)
    ]
    assert running == [], "pg_dump must not outlive a failed backup"


def _command_line(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""
