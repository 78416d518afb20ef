"""The log archive's test data: old audit logs to archive, and how to compare rows with stored ones."""

from __future__ import annotations

import gzip
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from models.log_archive import ARCHIVE_FOLDER, ArchiveRun, parse_batch_key
from models.settings import Settings
from tasks.seed.synth import synth
from tasks.storage import ObjectStore
from tests.helpers import synth_plan
from tests.integration.conftest import connect, spawn_cli

OLD = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture
def archive_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={"backup_url": str(tmp_path / "store"), "archive_batch_size": 700, "bcrypt_rounds": 4}
    )


@pytest.fixture
def logs_url(migrated_url: URL, archive_settings: Settings) -> URL:
    """2,000 audit logs from May 2024 (old), and 50 written today (new)."""
    synth(
        migrated_url,
        archive_settings,
        synth_plan(users=20, audit_logs=2_000, events=300, seed=5, until=OLD),
    )
    with connect(migrated_url) as connection:
        connection.execute(
            "INSERT INTO audit_logs (action, entity_type, payload) "
            "SELECT 'login', 'user', jsonb_build_object('n', g) FROM generate_series(1, 50) AS g"
        )
    return migrated_url


def row_hashes(url: URL, table: str, where: str = "true") -> dict[int, str]:
    """Each row's md5 of its canonical JSON (jsonb's own text form), by id."""
    with connect(url) as connection:
        rows = connection.execute(f"SELECT id, md5(to_jsonb(t)::text) FROM {table} AS t WHERE {where}")
        return {int(str(row[0])): str(row[1]) for row in rows}


def batch_keys(store: ObjectStore, table: str = "audit_logs") -> list[str]:
    """The keys of every batch of *table* in the store, whichever database's."""
    return [
        stored.key
        for stored in store.list_objects(ARCHIVE_FOLDER + "/")
        if (parsed := parse_batch_key(stored.key)) is not None and parsed.table == table
    ]


def archived_ids(store: ObjectStore, table: str = "audit_logs") -> list[int]:
    ids = []
    for key in batch_keys(store, table):
        for line in gzip.decompress(store.read_bytes(key)).splitlines():
            ids.append(int(json.loads(line)["id"]))
    return ids


def archive_runs(store: ObjectStore) -> list[ArchiveRun]:
    """Every run manifest in the store, whichever database's, oldest first."""
    keys = sorted(stored.key for stored in store.list_objects(ARCHIVE_FOLDER + "/") if "/runs/" in stored.key)
    return [ArchiveRun.model_validate_json(store.read_bytes(key)) for key in keys]


def spawn_archiver(cli_env: dict[str, str], bucket: str, endpoint: str) -> subprocess.Popen[str]:
    """``dbops archive-logs`` of the audit logs, in batches of 700, into *bucket* through *endpoint*."""
    return spawn_cli(
        "archive-logs",
        "--table",
        "audit_logs",
        env=cli_env
        | {
            "DBOPS_BACKUP_URL": f"s3://{bucket}/logs",
            "DBOPS_S3_ENDPOINT_URL": endpoint,
            "DBOPS_ARCHIVE_BATCH_SIZE": "700",
        },
    )
