"""Operator actions from the command line reach Prefect's event feed, naming the database, the backup
and who ran them; the flows' events are checked beside each flow's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.settings import PREFECT_API_URL
from sqlalchemy.engine import URL

from flows.events import database_resource
from tasks.postgres.embedded import EmbeddedServer
from tests.helpers import wait_for
from tests.integration.conftest import cli_command, drop_databases_like, on_a_terminal, run_cli

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.any_major]


def events_about(database: str) -> dict[str, Any]:
    """The newest event of each dbops name whose resource is *database*."""
    with get_client(sync_client=True) as client:
        page = client.read_events(
            EventFilter(
                event=EventNameFilter(prefix=["dbops."]),
                resource=EventResourceFilter(id=[database_resource(database)["prefect.resource.id"]]),
            ),
            limit=50,
        )
    newest: dict[str, Any] = {}
    for event in sorted(page.events, key=lambda event: event.occurred):
        newest[event.event] = event
    return newest


@pytest.fixture
def target(seeded_url: URL, pg_server: EmbeddedServer) -> Iterator[str]:
    name = str(seeded_url.database)
    yield name
    drop_databases_like(pg_server, name + "%", keep=name)


def test_backup_rehearsal_restore_and_rollback_from_a_shell_are_on_the_feed(
    seeded_url: URL, target: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    database = str(seeded_url.database)
    env = cli_env | {
        "DBOPS_BACKUP_URL": str(tmp_path / "backups"),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }

    for command in (
        ["backup", "--no-prune"],
        ["rehearse"],
        ["restore", "--target", database, "--confirm", database, "--yes"],
        ["restore", "--rollback", database, "--confirm", database],
    ):
        done = run_cli(*command, env=env, timeout=300)
        assert done.returncode == 0, done.stderr

    wanted = {
        "dbops.backup.completed",
        "dbops.rehearsal.passed",
        "dbops.restore.swapped",
        "dbops.restore.rolled-back",
    }
    wait_for(
        lambda: wanted <= set(events_about(database)), "the command line's events never reached the feed"
    )
    events = events_about(database)
    completed = events["dbops.backup.completed"]
    backup_id = completed.related[0].id.removeprefix("dbops.backup.")
    assert completed.payload["stored_bytes"] > 0
    assert "dbops command line" in completed.payload["operator"]
    assert events["dbops.rehearsal.passed"].related[0].id == f"dbops.backup.{backup_id}"
    assert events["dbops.restore.swapped"].related[0].id == f"dbops.backup.{backup_id}"
    assert events["dbops.restore.rolled-back"].payload["restored_from"].startswith(f"{database}_pre_restore_")


def test_a_restore_rejected_on_the_terminal_names_the_backup_latest_stood_for(
    seeded_url: URL, target: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    database = str(seeded_url.database)
    env = cli_env | {
        "DBOPS_BACKUP_URL": str(tmp_path / "backups"),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    backed_up = run_cli("backup", "--no-prune", env=env, timeout=300)
    assert backed_up.returncode == 0, backed_up.stderr
    wait_for(lambda: "dbops.backup.completed" in events_about(database), "the backup's event never came")
    completed = events_about(database)["dbops.backup.completed"]
    backup_id = completed.related[0].id.removeprefix("dbops.backup.")

    rejected = on_a_terminal(  # --backup defaults to latest
        cli_command("restore", "--target", database, "--confirm", database), env, typed="no\n"
    )

    assert rejected.returncode == 1, rejected.output
    assert f"from backup {backup_id} was rejected" in rejected.output
    wait_for(lambda: "dbops.restore.rejected" in events_about(database), "no rejected event")
    event = events_about(database)["dbops.restore.rejected"]
    assert [related.id for related in event.related] == [f"dbops.backup.{backup_id}"]
    assert "dbops command line" in event.payload["operator"]


def test_without_a_prefect_api_the_command_line_sends_nothing(
    seeded_url: URL, cli_env: dict[str, str], tmp_path: Path
) -> None:
    database = str(seeded_url.database)
    env = cli_env | {"DBOPS_BACKUP_URL": str(tmp_path / "backups")}  # no PREFECT_API_URL

    done = run_cli("backup", "--no-prune", env=env)

    assert done.returncode == 0, done.stderr
    assert events_about(database) == {}
