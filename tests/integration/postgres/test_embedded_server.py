"""The embedded server used by ``make demo`` and the suite: reuse, stop, and another PostgreSQL version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from models.settings import load_settings
from tasks.postgres.embedded import ensure_running, stop
from tasks.schema.migrate import head_revision, migrate
from tests.conftest import missing_tool
from tests.helpers import environment_without_dbops
from tests.integration.conftest import REPO_ROOT, run_cli


def test_a_running_server_is_reused_and_stops(server_dir: Path, pg_bindir: Path) -> None:
    first = ensure_running(server_dir, pg_bindir, durable=False)
    second = ensure_running(server_dir, pg_bindir, durable=False)
    assert second.port == first.port
    assert ((server_dir / "password").stat().st_mode & 0o777) == 0o600

    assert stop(server_dir, pg_bindir) is True
    assert stop(server_dir, pg_bindir) is False


def test_demo_defaults_migrate_an_embedded_server_with_no_url(server_dir: Path) -> None:
    env = environment_without_dbops()
    env["DBOPS_HOME"] = str(server_dir / "home")
    try:
        migrated = run_cli("migrate", env=env)
        url = run_cli("db-url", env=env)
    finally:
        run_cli("embedded-stop", env=env)

    assert migrated.returncode == 0, migrated.stderr
    assert "upgrade base -> " in migrated.stdout
    assert url.stdout.startswith("postgresql+psycopg://dbops:***@127.0.0.1:")
    assert "embedded server in" in url.stderr


def _other_bindirs() -> list[Path]:
    return sorted(path for path in Path("/usr/lib/postgresql").glob("*/bin") if (path / "postgres").exists())


def test_migrations_run_on_a_system_postgresql_too(server_dir: Path) -> None:
    candidates = _other_bindirs()
    if not candidates:
        missing_tool("no system PostgreSQL server in /usr/lib/postgresql/*/bin (Debian package postgresql)")
    bindir = candidates[0]
    server = ensure_running(server_dir, bindir, durable=False)
    try:
        settings = load_settings(_env_file=None, home=server_dir, pg_bindir=bindir)
        result = migrate(server.url(), settings)
    finally:
        stop(server_dir, bindir)
    assert result.revision_after == head_revision()


def test_two_first_time_starts_at_once_share_one_server(server_dir: Path, pg_bindir: Path) -> None:
    """Two ``dbops demo`` runs on a fresh DBOPS_HOME: both start the server, neither fails."""
    go = server_dir.parent / f"{server_dir.name}.go"
    start = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from tasks.postgres.embedded import ensure_running\n"
        "go, base, bindir = (Path(argument) for argument in sys.argv[1:4])\n"
        "print('ready', flush=True)\n"
        "while not go.exists():\n"
        "    time.sleep(0.01)\n"
        "print(ensure_running(base, bindir, database='platform', durable=False).port)\n"
    )
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", start, str(go), str(server_dir), str(pg_bindir)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for process in starts:  # both have imported dbops and wait for the same moment
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        go.touch()
        results = [process.communicate(timeout=120) for process in starts]
        assert [process.returncode for process in starts] == [0, 0], [error for _, error in results]
        ports = {int(output.strip()) for output, _ in results}
        assert len(ports) == 1, ports
        server = ensure_running(server_dir, pg_bindir, database="platform", durable=False)
        assert {server.port} == ports
    finally:
        go.unlink(missing_ok=True)
        stop(server_dir, pg_bindir)
