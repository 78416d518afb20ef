"""Backups of different databases in one store: each keeps its own timeline.

``latest`` restores each database's own newest backup, retention keeps each one's points, and a
backup of one database lands on another only when asked for by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from models.backup import BackupManifest, manifest_key
from models.errors import RestoreRefusedError
from models.settings import Settings
from tasks.backup.catalog import list_backups, prune
from tasks.backup.dump import backup
from tasks.postgres.embedded import EmbeddedServer
from tasks.restore.operator import restore
from tasks.schema.migrate import migrate
from tasks.storage import open_store
from tests.integration.conftest import admin_connection, connect, drop_databases_like, run_cli


@pytest.fixture
def store_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "backup_url": str(tmp_path / "backups"),
            "backup_keep_last": 1,
            "backup_keep_daily": 0,
            "backup_keep_weekly": 0,
            "backup_keep_monthly": 0,
        }
    )


@pytest.fixture
def staging(seeded_url: URL, pg_server: EmbeddedServer, settings: Settings) -> URL:
    """A second database on the same server, told apart by its data: it holds no applications."""
    name = f"{seeded_url.database}_staging"
    with admin_connection(pg_server) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = seeded_url.set(database=name)
    migrate(url, settings)
    return url


def applications(url: URL) -> int:
    with connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM applications").fetchone()
    assert row is not None
    return int(str(row[0]))


def drop_set_aside(server: EmbeddedServer, *names: str) -> None:
    drop_databases_like(server, *(f"{name}\\_%" for name in names))


def test_latest_and_retention_work_per_source_database(
    seeded_url: URL, staging: URL, store_settings: Settings, pg_server: EmbeddedServer
) -> None:
    store = open_store(store_settings)
    taken: list[BackupManifest] = []
    for url in (seeded_url, staging, seeded_url, staging):  # alternating, as two schedules would
        taken.append(backup(url, store_settings, store))
    production, stage = str(seeded_url.database), str(staging.database)
    assert [manifest.source.database for manifest in taken if manifest.source] == [production, stage] * 2

    plan = prune(store, store_settings.retention_policy, store_settings.timezone)

    kept = {manifest.backup_id for manifest in list_backups(store)}
    assert kept == {taken[2].backup_id, taken[3].backup_id}, "each database keeps its own newest"
    assert sorted(plan.remove) == sorted([taken[0].backup_id, taken[1].backup_id])

    with connect(seeded_url) as connection:
        connection.execute("DELETE FROM applications")
    try:
        restored = restore(store_settings, store, backup_id="latest", target=production, confirm=production)
        assert restored.backup_id == taken[2].backup_id
        assert applications(seeded_url) == 300
        restored = restore(store_settings, store, backup_id="latest", target=stage, confirm=stage)
        assert restored.backup_id == taken[3].backup_id
        assert applications(staging) == 0
    finally:
        drop_set_aside(pg_server, production, stage)


def test_another_databases_backup_needs_from_database(
    seeded_url: URL, staging: URL, store_settings: Settings, pg_server: EmbeddedServer
) -> None:
    store = open_store(store_settings)
    theirs = backup(seeded_url, store_settings, store)
    production, stage = str(seeded_url.database), str(staging.database)

    with pytest.raises(RestoreRefusedError, match=f"there is no complete backup of database {stage}"):
        restore(store_settings, store, backup_id="latest", target=stage, confirm=stage)
    with pytest.raises(
        RestoreRefusedError, match=f"backup {theirs.backup_id} is of database {production}, not {stage}"
    ):
        restore(store_settings, store, backup_id=theirs.backup_id, target=stage, confirm=stage)
    assert applications(staging) == 0

    try:
        copied = restore(
            store_settings, store, backup_id="latest", target=stage, confirm=stage, from_database=production
        )
        assert copied.backup_id == theirs.backup_id
        assert applications(staging) == 300
    finally:
        drop_set_aside(pg_server, stage)


def test_backups_of_the_previous_release_still_list_restore_and_prune(
    seeded_url: URL, store_settings: Settings, cli_env: dict[str, str], pg_server: EmbeddedServer
) -> None:
    store = open_store(store_settings)
    old = backup(seeded_url, store_settings, store)
    legacy = json.loads(store.read_bytes(manifest_key(old.backup_id)))
    del legacy["source"]  # as the previous release wrote it
    store.put_bytes(manifest_key(old.backup_id), json.dumps(legacy).encode())
    new = backup(seeded_url, store_settings, store)
    production = str(seeded_url.database)
    env = cli_env | {"DBOPS_BACKUP_URL": str(store_settings.backup_url)}

    listed = run_cli("backups", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [" ".join(line.split()) for line in listed.stdout.splitlines()]
    assert any(row.startswith(f"{old.backup_id} {production} (server unrecorded)") for row in rows)
    try:
        restored = run_cli(
            "restore",
            "--target",
            production,
            "--confirm",
            production,
            "--yes",
            "--backup",
            old.backup_id,
            env=env,
        )
        assert restored.returncode == 0, restored.stderr
    finally:
        drop_set_aside(pg_server, production)

    plan = prune(store, store_settings.retention_policy, store_settings.timezone)

    assert plan.remove == [old.backup_id], "the old backup is on the same database's timeline"
    assert [manifest.backup_id for manifest in list_backups(store)] == [new.backup_id]
