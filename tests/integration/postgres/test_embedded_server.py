"""The embedded server used by ``make demo`` and the suite: reuse, stop, and another PostgreSQL version."""

from __future__ import annotations

from pathlib import Path

from models.settings import load_settings
from tasks.postgres.embedded import ensure_running, stop
from tasks.schema.migrate import head_revision, migrate
from tests.conftest import missing_tool
from tests.helpers import environment_without_dbops
from tests.integration.conftest import run_cli


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
