"""A server that records the workload, shared by the workload advice's and the verification's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.postgres.embedded import EmbeddedServer, ensure_running, stop
from tests.integration.conftest import server_directory
from tests.integration.extensions import require_extension


@pytest.fixture(scope="session")
def statements_server(pg_bindir: Path) -> Iterator[EmbeddedServer]:
    """A server of its own with pg_stat_statements preloaded: the shared test server does not load
    it, and the review's tests assert what it says where the extension is missing."""
    with server_directory() as base_dir:
        server = ensure_running(
            base_dir,
            pg_bindir,
            durable=False,
            server_settings={"shared_preload_libraries": "pg_stat_statements"},
        )
        yield server
        stop(base_dir, pg_bindir)


def require_hypopg(server: EmbeddedServer, pg_bindir: Path) -> None:
    """Skip on the wheel's server, which has no hypopg; fail under CI on a system server without it."""
    require_extension(server, pg_bindir, "hypopg")
