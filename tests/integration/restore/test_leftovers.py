"""Crash leftovers: children die with a killed dbops, and what the killed run left is swept next time.

Only marked databases with no session are dropped; a look-alike without the mark, or a copy with a
session connected, is reported and kept.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from flows.restore_copies import restore_copies_flow
from models.marks import DatabaseMark, MarkKind
from models.settings import Settings
from tasks.postgres.embedded import EmbeddedServer
from tasks.restore.leftovers import sweep
from tests.helpers import synth_plan
from tests.integration.conftest import (
    admin_connection,
    connect,
    drop_databases_like,
    flow_run_artifacts,
    point_flows_at,
    run_cli,
    spawn_cli,
)


@pytest.fixture
def bigger_url(seeded_url: URL, settings: Settings) -> URL:
    """Enough rows that pg_restore runs long enough to be killed in the middle of it."""
    from tasks.seed.synth import synth

    synth(seeded_url, settings, synth_plan(audit_logs=400_000, events=200_000, seed=21))
    return seeded_url


@pytest.fixture
def leftovers_env(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return cli_env | {
        "DBOPS_BACKUP_URL": str(tmp_path / "backups"),
        "DBOPS_RESTORE_WORK_DIR": str(tmp_path / "work"),
        "DBOPS_STALE_AFTER_MINUTES": "0",
        "DBOPS_BCRYPT_ROUNDS": "4",
    }


@pytest.fixture
def clean_server(pg_server: EmbeddedServer, seeded_url: URL) -> Iterator[None]:
    yield
    drop_databases_like(pg_server, "rehearsal\\_%", f"{seeded_url.database}\\_%")


def restore_programs(under: Path) -> list[str]:
    """pg_restore processes working on a dump under *under*."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command_line = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"pg_restore" in command_line and str(under).encode() in command_line:
            found.append(command_line.decode(errors="replace"))
    return found


def wait_for_pg_restore(url: URL, cli: object) -> None:
    deadline = time.monotonic() + 120
    with connect(url.set(database="postgres")) as connection:
        while True:
            row = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'dbops pg_restore%'"
            ).fetchone()
            if row and row[0]:
                return
            assert time.monotonic() < deadline, "pg_restore never started"
            time.sleep(0.05)


def scratch_databases(server: EmbeddedServer, pattern: str) -> list[str]:
    with admin_connection(server) as connection:
        rows = connection.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (pattern,))
        return sorted(str(row[0]) for row in rows)


def wait_for_post_data(work: Path) -> None:
    """Until the post-data's pg_restore runs: the index builds, with the data checks beside them."""
    deadline = time.monotonic() + 120
    while not any("post-data.pgcustom" in command for command in restore_programs(work)):
        assert time.monotonic() < deadline, "the post-data never started"
        time.sleep(0.02)


@pytest.mark.usefixtures("clean_server")
@pytest.mark.parametrize("when", ["restoring", "checking beside post-data"])
def test_a_killed_rehearsal_takes_pg_restore_with_it_and_the_next_one_sweeps_up(
    when: str, bigger_url: URL, leftovers_env: dict[str, str], pg_server: EmbeddedServer, tmp_path: Path
) -> None:
    leftovers_env = leftovers_env | {"DBOPS_BACKUP_PARALLELISM": "2"}
    assert run_cli("backup", env=leftovers_env, timeout=300).returncode == 0
    killed = spawn_cli("rehearse", env=leftovers_env, start_new_session=True)
    if when == "restoring":
        wait_for_pg_restore(bigger_url, killed)
    else:
        wait_for_post_data(tmp_path / "work")
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    deadline = time.monotonic() + 5
    while restore_programs(tmp_path / "work") and time.monotonic() < deadline:
        time.sleep(0.1)

    assert restore_programs(tmp_path / "work") == [], "pg_restore outlived the dbops that started it"
    stale = scratch_databases(pg_server, "rehearsal\\_%")
    assert len(stale) == 1
    assert len(list((tmp_path / "work").glob("restore-*"))) == 1
    wait_until_unused(pg_server, stale[0])

    again = run_cli("rehearse", env=leftovers_env, timeout=300)

    assert again.returncode == 0, again.stderr
    assert f"dropped scratch {stale[0]}: " in again.stderr
    assert "made by run " in again.stderr
    assert "removed work directory " in again.stderr
    assert scratch_databases(pg_server, "rehearsal\\_%") == []
    assert list((tmp_path / "work").glob("restore-*")) == []


@pytest.mark.usefixtures("clean_server")
def test_a_killed_swap_leaves_the_target_and_the_next_restore_sweeps_its_copy(
    bigger_url: URL, leftovers_env: dict[str, str], pg_server: EmbeddedServer
) -> None:
    target = str(bigger_url.database)
    assert run_cli("backup", env=leftovers_env, timeout=300).returncode == 0
    with connect(bigger_url) as connection:
        before = connection.execute("SELECT count(*) FROM audit_logs").fetchone()
    killed = spawn_cli(
        "restore", "--target", target, "--confirm", target, "--yes", env=leftovers_env, start_new_session=True
    )
    wait_for_pg_restore(bigger_url, killed)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()

    with connect(bigger_url) as connection:
        assert connection.execute("SELECT count(*) FROM audit_logs").fetchone() == before
    copies = scratch_databases(pg_server, f"{target}\\_restoring\\_%")
    assert len(copies) == 1

    wait_until_unused(pg_server, copies[0])
    again = run_cli(
        "restore", "--target", target, "--confirm", target, "--yes", env=leftovers_env, timeout=300
    )

    assert again.returncode == 0, again.stderr
    assert f"dropped restoring {copies[0]}: " in again.stderr
    assert copies[0] not in scratch_databases(pg_server, f"{target}\\_restoring\\_%")


def wait_until_unused(server: EmbeddedServer, name: str) -> None:
    """Until the server has ended the killed pg_restore's sessions: a backend in the middle of a
    statement (an index build, say) notices its client is gone only when the statement ends, and the
    sweep rightly keeps a database with a session connected."""
    deadline = time.monotonic() + 180
    while sessions(server, name):
        assert time.monotonic() < deadline, f"the sessions of {name} never ended"
        time.sleep(0.2)


def sessions(server: EmbeddedServer, name: str) -> int:
    with admin_connection(server) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchone()
    return int(str(row[0])) if row else 0


def marked(server: EmbeddedServer, name: str, mark: DatabaseMark) -> None:
    with admin_connection(server) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
        connection.execute(f"COMMENT ON DATABASE \"{name}\" IS '{mark.render()}'")


@pytest.mark.usefixtures("clean_server")
def test_only_marked_copies_without_sessions_are_dropped_and_set_aside_ones_expire(
    seeded_url: URL, pg_server: EmbeddedServer, settings: Settings
) -> None:
    target = str(seeded_url.database)
    long_ago = datetime.now(UTC) - timedelta(days=10)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    with admin_connection(pg_server) as connection:
        connection.execute('CREATE DATABASE "rehearsal_20200101t000000_abcd"')  # looks like one, no mark
    marked(
        pg_server,
        "rehearsal_20200101t000000_busy",
        DatabaseMark(kind=MarkKind.SCRATCH, run="gone", created=long_ago),
    )
    marked(
        pg_server,
        "rehearsal_20200101t000000_gone",
        DatabaseMark(kind=MarkKind.SCRATCH, run="gone", created=long_ago),
    )
    old_aside, new_aside = f"{target}_pre_restore_20200101t000000", f"{target}_pre_restore_20261130t000000"
    marked(
        pg_server, old_aside, DatabaseMark(kind=MarkKind.SET_ASIDE, run="r1", created=long_ago, target=target)
    )
    marked(
        pg_server,
        new_aside,
        DatabaseMark(kind=MarkKind.SET_ASIDE, run="r2", created=yesterday, target=target),
    )
    server = pg_server.url("postgres")
    with connect(pg_server.url("rehearsal_20200101t000000_busy")):  # someone is looking at it
        report = sweep(server, settings.model_copy(update={"stale_after_minutes": 0}), run="this")

    dropped = {database.name for database in report.dropped}
    assert dropped == {"rehearsal_20200101t000000_gone", old_aside}
    assert any(
        "rehearsal_20200101t000000_abcd: named like a dbops copy but carries no dbops mark" in line
        for line in report.left
    )
    assert any("rehearsal_20200101t000000_busy: 1 session(s) connected" in line for line in report.left)
    remaining = scratch_databases(pg_server, "rehearsal\\_%") + scratch_databases(pg_server, f"{target}\\_%")
    assert "rehearsal_20200101t000000_abcd" in remaining
    assert "rehearsal_20200101t000000_busy" in remaining
    assert new_aside in remaining, "the newest set-aside copy, younger than the limit, stays for rollback"


@pytest.mark.usefixtures("clean_server", "prefect_api")
def test_the_weekly_step_lists_every_database_dbops_made_with_the_total(
    seeded_url: URL, pg_server: EmbeddedServer, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_flows_at(monkeypatch, seeded_url, settings)
    target = str(seeded_url.database)
    marked(
        pg_server,
        f"{target}_pre_restore_20261130t000000",
        DatabaseMark(kind=MarkKind.SET_ASIDE, run="r2", created=datetime.now(UTC), target=target),
    )

    state = restore_copies_flow(return_state=True)

    assert state.is_completed(), state.message
    artifacts = flow_run_artifacts(state.state_details.flow_run_id)
    assert f"{target}_pre_restore_20261130t000000" in str(artifacts["restore-copies"])
