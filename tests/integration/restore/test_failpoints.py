"""A restore, an in-place restore and a rollback killed at every step that changes a live database.

Each run is SIGKILLed at one named step (``DBOPS_FAILPOINT``), as an OOM kill or an eviction would
kill it: no cleanup runs. Then the next job on the database (a backup) and ``dbops status`` run, and
the invariant is checked: the target exists and accepts connections, it holds either its old data or
the restored data, every database left beside it carries a dbops mark and is listed by status, and the
database that is not live (the old one after a swap, the restored one after a rollback) is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from models.marks import MarkKind, Sequence, parse_mark
from tasks.postgres.embedded import EmbeddedServer
from tasks.restore.journal import STEPS
from tests.integration.conftest import (
    ManagedDatabase,
    admin_connection,
    connect,
    drop_databases_like,
    run_cli,
)

SWAP = [f"swap.{step}" for step in STEPS[Sequence.SWAP]]
IN_PLACE = [f"in-place.{step}" for step in STEPS[Sequence.IN_PLACE]]
ROLLBACK = [f"rollback.{step}" for step in STEPS[Sequence.ROLLBACK]]
KILLED = -9


@pytest.fixture
def env(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return cli_env | {
        "DBOPS_BACKUP_URL": str(tmp_path / "backups"),
        "DBOPS_RESTORE_WORK_DIR": str(tmp_path / "work"),
        "DBOPS_BCRYPT_ROUNDS": "4",
    }


@pytest.fixture
def platform(seeded_url: URL, pg_server: EmbeddedServer) -> Iterator[str]:
    name = str(seeded_url.database)
    yield name
    drop_databases_like(pg_server, name + "\\_%")


def applications(url: URL) -> int:
    with connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM applications").fetchone()
    assert row is not None
    return int(str(row[0]))


def beside(server: EmbeddedServer, target: str) -> dict[str, tuple[bool, MarkKind | None]]:
    """The databases named after *target*: whether each accepts connections, and its mark's kind."""
    with admin_connection(server) as connection:
        rows = connection.execute(
            "SELECT datname, datallowconn, shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE datname LIKE %s",
            (target.replace("_", "\\_") + "\\_%",),
        ).fetchall()
    found = {}
    for name, allowed, comment in rows:
        mark = parse_mark(None if comment is None else str(comment))
        found[str(name)] = (bool(allowed), mark.kind if mark else None)
    return found


def allows_connections(server: EmbeddedServer, name: str) -> bool | None:
    with admin_connection(server) as connection:
        row = connection.execute(
            "SELECT datallowconn FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
    return None if row is None else bool(row[0])


def next_job_and_status(env: dict[str, str], server: EmbeddedServer, target: str) -> str:
    """Run the next job on *target* (a backup) and ``dbops status``; both succeed. Returns status."""
    backup = run_cli("backup", env=env)
    assert backup.returncode == 0, backup.stderr
    status = run_cli("status", env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert allows_connections(server, target) is True
    assert "interrupted" not in status.stdout, status.stdout
    left = beside(server, target)
    for name, (allowed, kind) in left.items():
        assert kind is not None, f"{name} carries no dbops mark"
        assert allowed or kind is MarkKind.FAILED, f"{name} was left closed"
        assert name in status.stdout, f"status does not list {name}"
    return status.stdout


def kill_at(step: str, arguments: list[str], env: dict[str, str]) -> None:
    killed = run_cli(*arguments, env=env | {"DBOPS_FAILPOINT": step})
    assert killed.returncode == KILLED, f"{step} was never reached: {killed.stderr}"


@pytest.mark.parametrize("step", SWAP + IN_PLACE)
def test_a_restore_killed_at_any_step_leaves_the_target_open_with_old_or_restored_data(
    step: str, seeded_url: URL, platform: str, env: dict[str, str], pg_server: EmbeddedServer
) -> None:
    restored = applications(seeded_url)
    assert run_cli("backup", env=env).returncode == 0
    with connect(seeded_url) as connection:
        connection.execute("DELETE FROM applications")  # the old data: no applications
    mode = "in-place" if step.startswith("in-place") else "swap"

    kill_at(step, ["restore", "--target", platform, "--confirm", platform, "--yes", "--mode", mode], env)
    next_job_and_status(env, pg_server, platform)

    now = applications(seeded_url)
    assert now in (0, restored)
    kept = beside(pg_server, platform)
    if mode == "swap" and now == restored:  # swapped: the old database is kept, set aside
        aside = [name for name, (_, kind) in kept.items() if kind is MarkKind.SET_ASIDE]
        assert len(aside) == 1, kept
        assert applications(seeded_url.set(database=aside[0])) == 0
    if mode == "in-place":
        assert kept == {}, "an in-place restore leaves no copy once finished or undone"


@pytest.mark.parametrize("step", ROLLBACK)
def test_a_rollback_killed_at_any_step_leaves_the_target_open_and_both_databases_kept(
    step: str, seeded_url: URL, platform: str, env: dict[str, str], pg_server: EmbeddedServer
) -> None:
    restored = applications(seeded_url)
    assert run_cli("backup", env=env).returncode == 0
    with connect(seeded_url) as connection:
        connection.execute("DELETE FROM applications")
    swapped = run_cli("restore", "--target", platform, "--confirm", platform, "--yes", env=env)
    assert swapped.returncode == 0, swapped.stderr

    kill_at(step, ["restore", "--rollback", platform, "--confirm", platform], env)
    next_job_and_status(env, pg_server, platform)

    now = applications(seeded_url)
    assert now in (0, restored)
    other = [name for name, (_, kind) in beside(pg_server, platform).items() if kind is not MarkKind.FAILED]
    assert len(other) == 1, "the database that is not live is kept, set aside or rolled back"
    assert applications(seeded_url.set(database=other[0])) == (restored if now == 0 else 0)


@pytest.mark.parametrize("step", SWAP)
def test_a_managed_roles_swap_killed_at_any_step_leaves_the_target_open(
    step: str, managed: ManagedDatabase, pg_server: EmbeddedServer
) -> None:
    target = str(managed.url.database)
    restored = applications(managed.url)
    assert run_cli("backup", env=managed.env).returncode == 0
    with connect(pg_server.url(target)) as connection:
        connection.execute("DELETE FROM applications")

    kill_at(step, ["restore", "--target", target, "--confirm", target, "--yes"], managed.env)
    next_job_and_status(managed.env, pg_server, target)

    assert applications(pg_server.url(target)) in (0, restored)
