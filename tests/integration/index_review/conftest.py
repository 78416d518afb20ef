"""A server that records the workload, shared by the workload advice's and the verification's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
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


def plant_rows(connection: psycopg.Connection[tuple[object, ...]], rows: int, *, users: bool) -> None:
    """*rows* audit logs and *rows* analytics events (with a user each, if *users*) spread over few
    distinct values, as the planted workloads filter and sort them."""
    connection.execute(f"""
        INSERT INTO audit_logs (action, entity_type, entity_id, created_at)
        SELECT 'action_' || (g % 40), 'type_' || (g % 6), (g % 20000)::text,
               now() - g * interval '1 minute'
        FROM generate_series(1, {rows}) AS g""")
    user = "('00000000-0000-0000-0001-' || lpad((g % 5000)::text, 12, '0'))::uuid, " if users else ""
    connection.execute(f"""
        INSERT INTO analytics_events ({"user_id, " if users else ""}university_id, event_type, occurred_at)
        SELECT {user}('00000000-0000-0000-0000-' || lpad((g % 300)::text, 12, '0'))::uuid,
               'event_' || (g % 12), now() - g * interval '1 minute'
        FROM generate_series(1, {rows}) AS g""")
