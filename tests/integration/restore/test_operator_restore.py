"""Operator restores on a real server: swap with rollback, in place over live sessions, refusals, and
the maintenance slot keeping a restore and a backup apart."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.exceptions import ObjectNotFound
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from flows.backup import backup_flow
from flows.maintenance_slot import MAINTENANCE_LIMIT
from flows.restore import restore_flow
from models.backup import BackupManifest
from models.errors import BackupCorruptError, RestoreError, RestoreRefusedError
from models.rehearsal import RestoreMode
from models.settings import Environment, Settings
from tasks.backup.dump import backup
from tasks.postgres.embedded import EmbeddedServer
from tasks.postgres.engine import make_engine
from tasks.restore.operator import restore
from tasks.restore.rollback import rollback
from tasks.restore.swap import rename_in_one_transaction
from tasks.storage import ObjectStore, open_store
from tests.integration.conftest import (
    admin_connection,
    connect,
    flow_url,
    main_task_interval,
    point_flows_at,
    run_cli,
)
from tests.integration.restore.conftest import count, databases


def test_swap_keeps_the_old_database_and_rollback_swaps_back(
    seeded_url: URL,
    target: str,
    taken: tuple[ObjectStore, BackupManifest],
    restore_settings: Settings,
    pg_server: EmbeddedServer,
) -> None:
    store, manifest = taken
    with connect(seeded_url) as connection:  # the disaster the restore repairs
        connection.execute("DELETE FROM applications")

    result = restore(restore_settings, store, backup_id="latest", target=target, confirm=target)

    assert result.passed
    assert result.mode is RestoreMode.SWAP
    for table, rows in manifest.row_counts.items():
        assert count(seeded_url, table) == rows, table
    assert result.previous_database is not None
    assert result.previous_database.startswith(f"{target}_pre_restore_")
    assert count(pg_server.url(result.previous_database), "applications") == 0

    rolled = rollback(restore_settings, target, confirm=target)

    assert rolled.restored_from == result.previous_database
    assert count(seeded_url, "applications") == 0
    assert rolled.set_aside_as.startswith(f"{target}_rolled_back_")
    assert count(pg_server.url(rolled.set_aside_as), "applications") == manifest.row_counts["applications"]


def test_a_wrong_or_missing_confirmation_touches_nothing(
    seeded_url: URL,
    target: str,
    taken: tuple[ObjectStore, BackupManifest],
    restore_settings: Settings,
    pg_server: EmbeddedServer,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    store, _ = taken
    before = databases(pg_server, "")
    with connect(seeded_url) as connection:
        connection.execute("DELETE FROM applications")

    with pytest.raises(RestoreRefusedError, match=f"needs --confirm {target}; nothing was done"):
        restore(restore_settings, store, backup_id="latest", target=target, confirm="platform")
    environment = cli_env | {"DBOPS_BACKUP_URL": str(tmp_path / "backups")}
    cli = run_cli("restore", "--target", target, "--yes", env=environment)

    assert cli.returncode == 2
    assert (
        cli.stderr.strip()
        .splitlines()[-1]
        .startswith(f"dbops: error: restoring over {target} needs --confirm")
    )
    assert databases(pg_server, "") == before
    assert count(seeded_url, "applications") == 0
    assert not list(restore_settings.effective_restore_work_dir.glob("*/*"))


def test_in_place_restore_ends_live_sessions_and_succeeds(
    seeded_url: URL,
    target: str,
    taken: tuple[ObjectStore, BackupManifest],
    restore_settings: Settings,
) -> None:
    store, manifest = taken
    with connect(seeded_url) as connection:
        connection.execute("DELETE FROM applications")
    live = connect(seeded_url)
    live.execute("SELECT 1")

    result = restore(
        restore_settings,
        store,
        backup_id=manifest.backup_id,
        target=target,
        confirm=target,
        mode=RestoreMode.IN_PLACE,
    )

    assert result.passed
    assert result.previous_database is None
    assert count(seeded_url, "applications") == manifest.row_counts["applications"]
    with pytest.raises(psycopg.OperationalError):
        live.execute("SELECT 1")
    live.close()


def test_refusals_name_what_is_wrong_and_change_nothing(
    seeded_url: URL,
    target: str,
    taken: tuple[ObjectStore, BackupManifest],
    restore_settings: Settings,
    pg_server: EmbeddedServer,
) -> None:
    store, manifest = taken
    before = databases(pg_server, "")

    with pytest.raises(RestoreRefusedError, match=r"database nowhere does not exist on 127\.0\.0\.1"):
        restore(restore_settings, store, backup_id="latest", target="nowhere", confirm="nowhere")
    with pytest.raises(RestoreRefusedError, match="has no manifest"):
        restore(restore_settings, store, backup_id="20260101T000000Z-abcdef", target=target, confirm=target)
    with pytest.raises(RestoreRefusedError, match="reseeding after a restore is for development"):
        restore(
            restore_settings.model_copy(update={"environment": Environment.STAGING}),
            store,
            backup_id="latest",
            target=target,
            confirm=target,
            reseed=True,
        )
    stored = Path(str(restore_settings.backup_url)) / manifest.object_key
    stored.write_bytes(stored.read_bytes()[:-1] + b"\x00")
    with pytest.raises(BackupCorruptError, match="does not match its manifest"):
        restore(restore_settings, store, backup_id="latest", target=target, confirm=target)

    assert databases(pg_server, "") == before


def test_a_copy_failing_its_checks_is_dropped_and_the_target_kept(
    seeded_url: URL, target: str, restore_settings: Settings, pg_server: EmbeddedServer
) -> None:
    with connect(seeded_url) as connection:
        connection.execute("ALTER TABLE users ALTER COLUMN status SET DEFAULT 'ACTIVE'")
    store = open_store(restore_settings)
    backup(seeded_url, restore_settings, store)
    with connect(seeded_url) as connection:
        connection.execute("DELETE FROM applications")

    with pytest.raises(RestoreError, match="failed its checks") as raised:
        restore(restore_settings, store, backup_id="latest", target=target, confirm=target)

    assert "users.status defaults to 'ACTIVE'" in str(raised.value)
    assert "the target was not replaced" in str(raised.value)
    assert databases(pg_server, target) == {target}
    assert count(seeded_url, "applications") == 0


def test_reseed_in_development_runs_the_seed_over_the_restored_copy(
    seeded_url: URL, target: str, restore_settings: Settings
) -> None:
    with connect(seeded_url) as connection:
        connection.execute("UPDATE universities SET name = 'Renamed by hand' WHERE slug = 'uva'")
    store = open_store(restore_settings)
    backup(seeded_url, restore_settings, store)

    result = restore(restore_settings, store, backup_id="latest", target=target, confirm=target, reseed=True)

    assert result.reseeded
    with connect(seeded_url) as connection:
        name = connection.execute("SELECT name FROM universities WHERE slug = 'uva'").fetchone()
    assert name is not None
    assert name[0] != "Renamed by hand"


@pytest.mark.usefixtures("prefect_api")
def test_a_restore_and_a_backup_never_overlap(
    seeded_url: URL,
    target: str,
    taken: tuple[ObjectStore, BackupManifest],
    restore_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point_flows_at(monkeypatch, seeded_url, restore_settings)
    states: dict[str, State[Any]] = {}
    runs = {
        "restore": lambda: restore_flow(target=target, confirm=target, approval=False, return_state=True),
        "backup": lambda: backup_flow(database_url=flow_url(seeded_url, monkeypatch), return_state=True),
    }
    threads = {
        name: threading.Thread(target=lambda name=name, call=call: states.__setitem__(name, call()))
        for name, call in runs.items()
    }
    threads["restore"].start()
    # Only once the restore holds the slot does the backup start: without the slot it would run
    # in the middle of the restore.
    deadline = time.monotonic() + 60
    while _active_slots() < 1:
        assert time.monotonic() < deadline, "the restore never took the maintenance slot"
        time.sleep(0.05)
    threads["backup"].start()
    for thread in threads.values():
        thread.join(timeout=300)

    assert all(state.is_completed() for state in states.values()), states
    run_ids = [state.state_details.flow_run_id for state in states.values()]
    assert None not in run_ids
    (_, first_end), (second_start, _) = sorted(main_task_interval(run_id) for run_id in run_ids if run_id)
    assert first_end <= second_start
    assert _limit() == 1


def _active_slots() -> int:
    with get_client(sync_client=True) as client:
        try:
            return int(client.read_global_concurrency_limit_by_name(MAINTENANCE_LIMIT).active_slots)
        except ObjectNotFound:
            return 0


def _limit() -> int:
    with get_client(sync_client=True) as client:
        return int(client.read_global_concurrency_limit_by_name(MAINTENANCE_LIMIT).limit)


def test_the_renames_of_a_swap_are_all_or_nothing(pg_server: EmbeddedServer, settings: Settings) -> None:
    name = f"swap_{uuid.uuid4().hex[:8]}"
    with admin_connection(pg_server) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(pg_server.url("postgres"), settings, purpose="test")
    try:
        with pytest.raises(DBAPIError, match="does not exist"):
            rename_in_one_transaction(engine, [(name, f"{name}_aside"), (f"{name}_missing", name)])
        assert databases(pg_server, name) == {name}  # the first rename was rolled back with the second
    finally:
        engine.dispose()
        with admin_connection(pg_server) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
