"""Pinned backups are never pruned, and neither is the newest backup a rehearsal proved restorable."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models.backup import rehearsal_key
from models.rehearsal import RehearsalRecord
from models.retention import RetentionPolicy
from models.settings import Settings
from tasks.backup.catalog import list_backups, pin, prune, unpin
from tasks.storage import ObjectStore, open_store
from tests.integration.backup.test_prune import put_backup
from tests.integration.conftest import run_cli

NOW = datetime.now(UTC)
KEEP_ONE = RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)


@pytest.fixture
def store(settings: Settings, tmp_path: Path) -> ObjectStore:
    return open_store(settings.model_copy(update={"backup_url": str(tmp_path / "store")}))


def rehearsed(store: ObjectStore, backup_id: str, *, passed: bool) -> None:
    record = RehearsalRecord(
        backup_id=backup_id,
        passed=passed,
        server="127.0.0.1:5432",
        backup_revision="0002",
        jobs=2,
        stored_bytes=10,
        rehearsed_at=NOW,
    )
    store.put_bytes(rehearsal_key(backup_id), record.model_dump_json().encode())


def test_a_pinned_backup_survives_every_prune_until_unpinned(store: ObjectStore) -> None:
    old = put_backup(store, NOW - timedelta(days=40))
    newest = put_backup(store, NOW)
    pin(store, old, "legal hold: ticket 4711")

    plan = prune(store, KEEP_ONE, "UTC")

    assert plan.keep[old] == ["pinned: legal hold: ticket 4711"]
    assert {manifest.backup_id for manifest in list_backups(store)} == {old, newest}

    assert unpin(store, old) is True
    prune(store, KEEP_ONE, "UTC")
    assert [manifest.backup_id for manifest in list_backups(store)] == [newest]


def test_the_newest_backup_a_rehearsal_proved_is_kept_whatever_its_age(store: ObjectStore) -> None:
    proven = put_backup(store, NOW - timedelta(days=30))
    older_proven = put_backup(store, NOW - timedelta(days=31))
    failed = [put_backup(store, NOW - timedelta(days=days)) for days in (3, 2, 1)]
    rehearsed(store, proven, passed=True)
    rehearsed(store, older_proven, passed=True)
    for backup_id in failed:
        rehearsed(store, backup_id, passed=False)

    plan = prune(store, KEEP_ONE, "UTC")

    assert plan.keep[proven] == ["newest rehearsed"]
    assert sorted(manifest.backup_id for manifest in list_backups(store)) == sorted([proven, failed[-1]])


def test_pins_from_the_command_line_show_in_the_listing(
    store: ObjectStore, cli_env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    backup_id = put_backup(store, NOW - timedelta(days=2))
    env = cli_env | {"DBOPS_BACKUP_URL": str(tmp_path / "store")}

    missing_reason = run_cli("pin", backup_id, env=env)
    assert missing_reason.returncode == 2
    unknown = run_cli("pin", "20200101T000000Z-abcdef", "--reason", "why", env=env)
    assert unknown.returncode == 2
    assert "there is no complete backup 20200101T000000Z-abcdef" in unknown.stderr
    pinned = run_cli("pin", backup_id, "--reason", "before the migration to v2", env=env)
    assert pinned.returncode == 0, pinned.stderr

    listed = run_cli("backups", env=env)
    assert "pinned: before the migration to v2" in listed.stdout
    as_json = json.loads(run_cli("backups", "--json", env=env).stdout)
    assert as_json[0]["pin"]["reason"] == "before the migration to v2"
    assert run_cli("unpin", backup_id, env=env).stdout.strip() == f"backup {backup_id} is no longer pinned"
