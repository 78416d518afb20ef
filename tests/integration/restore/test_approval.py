"""A restore waits for an operator: the paused run shows the summary, holds neither the maintenance
slot nor the guard, and an approval, a rejection, no answer or a changed target each end it as they
should. The CLI asks on a terminal and needs --yes without one."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.input.run_input import keyset_from_paused_state
from sqlalchemy.engine import URL

from flows.events import database_resource
from flows.maintenance_slot import MAINTENANCE_LIMIT
from flows.restore import restore_flow
from models.backup import BackupManifest
from models.settings import Settings
from tasks.postgres.embedded import EmbeddedServer
from tasks.postgres.guard import guard_key
from tasks.restore.leftovers import sweep
from tasks.storage import ObjectStore
from tests.helpers import wait_for
from tests.integration.conftest import (
    admin_connection,
    cli_command,
    connect,
    on_a_terminal,
    point_flows_at,
    run_cli,
)
from tests.integration.restore.conftest import count, databases

pytestmark = pytest.mark.usefixtures("prefect_api")


@contextmanager
def restore_in_background(target: str, **parameters: Any) -> Iterator[dict[str, State[Any]]]:
    """Run the restore flow in a thread; the dict holds its final state once the block ends."""
    final: dict[str, State[Any]] = {}

    def run() -> None:
        final["state"] = restore_flow(target=target, confirm=target, return_state=True, **parameters)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield final
    finally:
        thread.join(timeout=300)
        assert not thread.is_alive(), "the restore flow never ended"


def paused_run(target: str, timeout: float = 180) -> FlowRun:
    """The restore of *target* once it waits for approval (its copy built and checked)."""
    deadline = time.monotonic() + timeout
    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    while True:
        with get_client(sync_client=True) as client:
            for run in client.read_flow_runs(flow_run_filter=paused):
                if run.parameters.get("target") == target:
                    return run
        assert time.monotonic() < deadline, "the restore never paused for approval"
        time.sleep(0.2)


def description(run: FlowRun) -> str:
    assert run.state is not None
    keyset = keyset_from_paused_state(run.state)
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:  # the form is saved just after the run enters Paused
            try:
                return str(client.read_flow_run_input(run.id, keyset["description"]))
            except Exception:
                assert time.monotonic() < deadline, "the paused run has no description"
                time.sleep(0.2)


def answer(run: FlowRun, decision: str) -> None:
    with get_client(sync_client=True) as client:
        client.resume_flow_run(run.id, run_input={"approve": decision == "approve", "note": "tested"})


def guard_held(server: EmbeddedServer, database: str) -> bool:
    unsigned = guard_key(database) & 0xFFFF_FFFF_FFFF_FFFF
    with admin_connection(server) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s",
            (unsigned >> 32, unsigned & 0xFFFF_FFFF),
        ).fetchone()
    assert row is not None
    return int(str(row[0])) > 0


def active_slots() -> int:
    with get_client(sync_client=True) as client:
        return int(client.read_global_concurrency_limit_by_name(MAINTENANCE_LIMIT).active_slots)


def events_about(database: str) -> list[str]:
    with get_client(sync_client=True) as client:
        page = client.read_events(
            EventFilter(
                event=EventNameFilter(prefix=["dbops."]),
                resource=EventResourceFilter(id=[database_resource(database)["prefect.resource.id"]]),
            ),
            limit=50,
        )
    return [event.event for event in page.events]


@pytest.fixture
def in_flows(
    monkeypatch: pytest.MonkeyPatch, seeded_url: URL, restore_settings: Settings
) -> Callable[..., None]:
    def point(**extra: str) -> None:
        point_flows_at(monkeypatch, seeded_url, restore_settings)
        for name, value in extra.items():
            monkeypatch.setenv(name, value)

    return point


def test_an_approved_restore_waits_holding_nothing_then_swaps(
    seeded_url: URL,
    target: str,
    taken: tuple[ObjectStore, BackupManifest],
    restore_settings: Settings,
    pg_server: EmbeddedServer,
    in_flows: Callable[..., None],
) -> None:
    _, manifest = taken
    in_flows()
    with connect(seeded_url) as connection:  # the accident the restore repairs
        connection.execute("DELETE FROM applications WHERE id IN (SELECT id FROM applications LIMIT 7)")
    live_applications = count(seeded_url, "applications")

    with restore_in_background(target) as final:
        run = paused_run(target)
        summary = description(run)
        (copy,) = databases(pg_server, f"{target}_restoring_")

        assert manifest.backup_id in summary
        assert (
            f"| applications | {manifest.row_counts['applications']:,} | {live_applications:,} | +7 |"
            in summary
        )
        assert "never rehearsed" in summary
        assert active_slots() == 0  # the nightly backup could run now
        assert not guard_held(pg_server, target)
        # Another run's sweep, with everything stale at once, leaves the copy: its mark holds it.
        sweep(
            pg_server.url("postgres"), restore_settings.model_copy(update={"stale_after_minutes": 0}), run="x"
        )
        assert copy in databases(pg_server, f"{target}_restoring_")
        assert count(seeded_url, "applications") == live_applications  # nothing touched yet

        answer(run, "approve")

    state = final["state"]
    assert state.is_completed(), state
    assert count(seeded_url, "applications") == manifest.row_counts["applications"]
    assert databases(pg_server, f"{target}_restoring_") == set()
    wait_for(
        lambda: {"dbops.restore.awaiting-approval", "dbops.restore.swapped"} <= set(events_about(target)),
        "the restore's events never reached the feed",
    )


def test_a_rejected_restore_drops_its_copy_and_leaves_the_target(
    seeded_url: URL,
    target: str,
    taken: tuple[ObjectStore, BackupManifest],
    pg_server: EmbeddedServer,
    in_flows: Callable[..., None],
) -> None:
    in_flows()
    with connect(seeded_url) as connection:
        connection.execute("DELETE FROM applications")

    with restore_in_background(target) as final:
        answer(paused_run(target), "reject")

    state = final["state"]
    assert state.type is StateType.CANCELLED, state
    assert state.message is not None
    assert "rejected by the operator (tested)" in state.message
    assert f"{target} was not touched" in state.message
    assert count(seeded_url, "applications") == 0
    assert databases(pg_server, f"{target}_restoring_") == set()
    wait_for(lambda: "dbops.restore.rejected" in events_about(target), "no rejected event")


def test_no_answer_in_time_fails_the_run_and_drops_the_copy(
    seeded_url: URL,
    target: str,
    taken: tuple[ObjectStore, BackupManifest],
    pg_server: EmbeddedServer,
    in_flows: Callable[..., None],
) -> None:
    in_flows(DBOPS_RESTORE_APPROVAL_TIMEOUT_SECONDS="3")
    with connect(seeded_url) as connection:
        connection.execute("DELETE FROM applications")

    with restore_in_background(target) as final:
        pass

    state = final["state"]
    assert state.type is StateType.FAILED, state
    assert state.message is not None
    assert "no operator answered within 3 s" in state.message
    assert count(seeded_url, "applications") == 0
    assert databases(pg_server, f"{target}_restoring_") == set()


def test_a_target_replaced_during_the_wait_is_not_swapped(
    seeded_url: URL,
    target: str,
    taken: tuple[ObjectStore, BackupManifest],
    pg_server: EmbeddedServer,
    in_flows: Callable[..., None],
) -> None:
    in_flows()
    moved = f"{target}_moved_{uuid.uuid4().hex[:6]}"

    with restore_in_background(target) as final:
        run = paused_run(target)
        with admin_connection(pg_server) as connection:  # someone swaps in another database by hand
            connection.execute(f'ALTER DATABASE "{target}" RENAME TO "{moved}"')
            connection.execute(f'CREATE DATABASE "{target}"')
        answer(run, "approve")

    state = final["state"]
    assert state.is_failed(), state
    assert state.message is not None
    assert f"{target} changed while the restore waited for approval" in state.message
    assert databases(pg_server, f"{target}_restoring_") == set()
    with connect(pg_server.url(target)) as connection:  # the stranger's database, untouched
        tables = connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,)


def test_the_cli_needs_yes_without_a_terminal_and_asks_on_one(
    seeded_url: URL,
    target: str,
    taken: tuple[ObjectStore, BackupManifest],
    pg_server: EmbeddedServer,
    cli_env: dict[str, str],
    restore_settings: Settings,
) -> None:
    _, manifest = taken
    environment = cli_env | {"DBOPS_BACKUP_URL": str(restore_settings.backup_url)}
    with connect(seeded_url) as connection:
        connection.execute("DELETE FROM applications")
    restore = ["restore", "--target", target, "--confirm", target]

    unattended = run_cli(*restore, env=environment)
    assert unattended.returncode == 2
    assert (
        unattended.stderr.strip()
        .splitlines()[-1]
        .startswith("dbops: error: dbops restore without a terminal needs --yes as well as --confirm")
    )
    assert databases(pg_server, f"{target}_restoring_") == set()  # nothing was built

    wrong = on_a_terminal(cli_command(*restore), environment, typed="platform\n")
    assert wrong.returncode == 1, wrong.output
    assert "rows per table" in wrong.output
    assert f"was rejected; {target} was not touched" in wrong.output
    assert count(seeded_url, "applications") == 0
    assert databases(pg_server, f"{target}_restoring_") == set()

    right = on_a_terminal(cli_command(*restore), environment, typed=f"{target}\n")
    assert right.returncode == 0, right.output
    assert count(seeded_url, "applications") == manifest.row_counts["applications"]
