"""A table held in ACCESS EXCLUSIVE (a stuck migration, a forgotten psql) never hangs the nightly backup:
it fails within the configured bound, names the session holding the table, and frees the slot."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from sqlalchemy.engine import URL

from flows.backup import backup_flow
from flows.maintenance_slot import MAINTENANCE_LIMIT
from models.errors import BackupError
from models.settings import Settings
from tasks.backup.dump import backup
from tasks.storage import open_store
from tests.integration.conftest import connect, flow_url, run_cli

LOCK_WAIT_SECONDS = 2


def test_a_locked_table_fails_the_backup_within_the_bound_naming_the_holder(
    seeded_url: URL, cli_env: dict[str, str], tmp_path: Path
) -> None:
    store = tmp_path / "backups"
    env = cli_env | {
        "DBOPS_BACKUP_URL": str(store),
        "DBOPS_LOCK_WAIT_TIMEOUT_SECONDS": str(LOCK_WAIT_SECONDS),
    }
    with connect(seeded_url) as holder, holder.transaction():
        holder.execute("LOCK TABLE audit_logs IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        result = run_cli("backup", env=env)
        elapsed = time.monotonic() - started
        pid = holder.info.backend_pid

    assert result.returncode == 1, result.stderr
    assert elapsed < LOCK_WAIT_SECONDS + 20, "the wait must be bounded by the setting, not by the holder"
    error = result.stderr.strip().splitlines()[-1]
    # The backup's own session locks every table it counts before pg_dump starts, and waits there.
    assert error.startswith("dbops: error: the backup of ")
    assert f"waited more than {LOCK_WAIT_SECONDS} s for a lock on audit_logs; nothing was stored." in error
    assert f"held by pid {pid}, application_name " in error
    assert ", since 20" in error  # the holder's query start
    assert "pg_terminate_backend(pid)" in error
    assert not (store / "backups").exists() or not any((store / "backups").rglob("manifest.json"))


@pytest.mark.usefixtures("prefect_api")
def test_the_flow_fails_and_releases_the_maintenance_slot(
    seeded_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBOPS_BACKUP_URL", str(tmp_path / "backups"))
    monkeypatch.setenv("DBOPS_LOCK_WAIT_TIMEOUT_SECONDS", str(LOCK_WAIT_SECONDS))
    with connect(seeded_url) as holder, holder.transaction():
        holder.execute("LOCK TABLE applications IN ACCESS EXCLUSIVE MODE")
        state = backup_flow(database_url=flow_url(seeded_url, monkeypatch), return_state=True)

    assert state.is_failed()
    assert "for a lock" in str(state.message)
    with get_client(sync_client=True) as client:
        try:
            active = int(client.read_global_concurrency_limit_by_name(MAINTENANCE_LIMIT).active_slots)
        except ObjectNotFound:
            active = 0
    assert active == 0


def test_a_multi_part_backup_waits_for_its_locks_before_any_part_starts(
    seeded_url: URL, settings: Settings, tmp_path: Path
) -> None:
    # The snapshot holder locks every planned table before the parts start, as pg_dump's leader does:
    # a table held in ACCESS EXCLUSIVE fails the backup there, within the bound, naming the holder.
    configured = settings.model_copy(
        update={
            "backup_url": str(tmp_path / "backups"),
            "backup_parallelism": 2,
            "lock_wait_timeout_seconds": LOCK_WAIT_SECONDS,
        }
    )
    store = open_store(configured)
    with connect(seeded_url) as holder, holder.transaction():
        holder.execute("LOCK TABLE audit_logs IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(BackupError) as failure:
            backup(seeded_url, configured, store)
        pid = holder.info.backend_pid
    assert failure.value.message.startswith("the backup of ")
    assert f"waited more than {LOCK_WAIT_SECONDS} s for a lock on audit_logs" in failure.value.message
    assert f"held by pid {pid}, " in str(failure.value.detail)
    assert list(store.list_objects("backups")) == []
