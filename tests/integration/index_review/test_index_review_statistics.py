"""Where the review's statistics come from: pg_stat_statements when loaded, and a clear error when
the statistics cannot be read at all."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from models.errors import IndexReviewError
from models.settings import Settings, load_settings
from tasks.index_review.runner import review_indexes
from tasks.postgres.embedded import EmbeddedServer, create_database, ensure_running, stop
from tests.integration.conftest import admin_connection, connect, run_cli, server_directory, url_string


@pytest.fixture(scope="module")
def statements_server(pg_bindir: Path) -> Iterator[EmbeddedServer]:
    """A server of its own with pg_stat_statements preloaded (a restart-only setting)."""
    with server_directory() as base_dir:
        server = ensure_running(base_dir, pg_bindir, durable=False)
        with admin_connection(server) as connection:
            connection.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        stop(base_dir, pg_bindir)
        yield ensure_running(base_dir, pg_bindir, durable=False)
        stop(base_dir, pg_bindir)


def test_without_pg_stat_statements_the_report_says_how_to_enable_it(
    migrated_url: URL, settings: Settings
) -> None:
    report = review_indexes(migrated_url, settings)

    assert not report.slow_queries.available
    assert "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" in report.slow_queries.detail
    assert "CREATE EXTENSION pg_stat_statements" in report.slow_queries.detail
    assert not [finding for finding in report.findings if finding.kind.value == "slow-query"]


def test_slow_queries_are_read_from_pg_stat_statements(statements_server: EmbeddedServer) -> None:
    name = f"test_{uuid.uuid4().hex[:12]}"
    create_database(statements_server, name)
    url = statements_server.url(name)
    settings = load_settings(_env_file=None, review_slow_query_min_calls=5, review_slow_query_min_mean_ms=5.0)

    preloaded_only = review_indexes(url, settings)
    assert not preloaded_only.slow_queries.available
    assert preloaded_only.slow_queries.detail.endswith("to enable it: CREATE EXTENSION pg_stat_statements")

    with connect(url) as connection:
        connection.execute("CREATE EXTENSION pg_stat_statements")
        for _ in range(5):
            connection.execute("SELECT pg_sleep(0.02)")
        for _ in range(50):
            connection.execute("SELECT 1")
    report = review_indexes(url, settings)

    assert report.slow_queries.available
    slow = [finding for finding in report.findings if finding.kind.value == "slow-query"]
    assert [finding.evidence["query"] for finding in slow] == ["SELECT pg_sleep($1)"]
    assert slow[0].evidence["calls"] == 5
    assert slow[0].evidence["mean_ms"] >= 20
    assert slow[0].id.startswith("slow-query:")
    assert not slow[0].sql


def test_other_roles_slow_queries_hidden_from_the_role_are_counted_not_made_findings(
    statements_server: EmbeddedServer,
) -> None:
    name = f"test_{uuid.uuid4().hex[:12]}"
    create_database(statements_server, name)
    url = statements_server.url(name)
    settings = load_settings(_env_file=None, review_slow_query_min_calls=5, review_slow_query_min_mean_ms=5.0)
    role, password = f"role_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with connect(url) as connection:
        connection.execute("CREATE EXTENSION pg_stat_statements")
        connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        connection.execute(f"GRANT pg_read_all_settings TO {role}")  # of pg_monitor, all but the stats
        for _ in range(5):
            connection.execute("SELECT pg_sleep(0.02)")
        for _ in range(5):
            connection.execute("SELECT pg_sleep(0.021)::text")

    try:
        report = review_indexes(url.set(username=role, password=password), settings)
    finally:
        with admin_connection(statements_server) as connection:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            connection.execute(f"DROP ROLE {role}")

    assert not [finding for finding in report.findings if finding.kind.value == "slow-query"]
    assert "2 more of other roles are hidden from this role" in report.slow_queries.detail
    assert "GRANT pg_read_all_stats" in report.slow_queries.detail


def test_unreadable_statistics_are_an_error_not_an_empty_review(
    migrated_url: URL, login_role_url: URL, settings: Settings, cli_env: dict[str, str]
) -> None:
    with connect(migrated_url) as connection:
        connection.execute("REVOKE SELECT ON pg_catalog.pg_stat_all_indexes FROM PUBLIC")
    unprivileged_url = login_role_url

    with pytest.raises(IndexReviewError) as raised:
        review_indexes(unprivileged_url, settings)

    assert "permission denied for view pg_stat_all_indexes" in str(raised.value)
    assert "GRANT pg_monitor TO that role" in str(raised.value)
    cli = run_cli("review-indexes", env=cli_env | {"DBOPS_DATABASE_URL": url_string(unprivileged_url)})
    assert cli.returncode == 1
    assert cli.stderr.strip().splitlines()[-1].startswith("dbops: error: could not read the index statistics")
    assert str(unprivileged_url.password) not in cli.stderr
