"""``dbops review-indexes --verify``: the advice measured on a copy restored from a backup.

A database with a planted workload (filters and ORDER BY ... LIMIT on unindexed columns of 100k-row
audit_logs and analytics_events, a lookup on a tiny table, and a lookup that needs an index whose
usage counters were reset) is backed up; the verified review must recommend the planted indexes with
their measured times, list the tiny table's index as not proven, and keep the index the lookup needs.
Runs without hypopg (every candidate built on the copy) and, where the server has it, with hypopg.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import URL

from flows.index_review import index_review_flow
from models.index_review import Finding, FindingKind, IndexReviewReport
from models.settings import Settings, load_settings
from tasks.backup.dump import backup
from tasks.index_review.verify.run import verify_review
from tasks.postgres.embedded import EmbeddedServer, create_database
from tasks.schema.migrate import migrate
from tasks.storage import open_store
from tests.integration.conftest import (
    admin_connection,
    connect,
    flow_run_artifacts,
    flow_url,
    run_cli,
    url_string,
)
from tests.integration.index_review.conftest import plant_rows, require_hypopg

ROWS = 120_000
CALLS = 30

WORKLOAD: list[tuple[str, Callable[[int], tuple[str, ...]]]] = [
    (
        "SELECT * FROM audit_logs WHERE entity_type = %s AND action = %s AND created_at >= %s",
        lambda i: ("type_1", f"action_{i % 40}", "2020-01-01"),
    ),
    (
        "SELECT * FROM analytics_events WHERE event_type = %s AND university_id = %s "
        "ORDER BY occurred_at DESC LIMIT 50",
        lambda i: (f"event_{i % 12}", f"00000000-0000-0000-0000-{i % 300:012d}"),
    ),
    ("SELECT label FROM tiny_codes WHERE code = %s", lambda i: (f"code_{i % 20}",)),
    (
        "SELECT count(*) FROM analytics_events WHERE user_id = %s",
        lambda i: (f"00000000-0000-0000-0001-{i % 5000:012d}",),
    ),
]


def planted(server: EmbeddedServer, home: Path, *, hypopg: bool) -> URL:
    """A migrated database with the workload run on it, recorded by pg_stat_statements, and the usage
    counters reset afterwards (so the index the last statement needs looks unused)."""
    name = f"planted_{uuid.uuid4().hex[:10]}"
    create_database(server, name)
    url = server.url(name)
    migrate(url, load_settings(_env_file=None, database_url=SecretStr(url_string(url)), home=home))
    with connect(url) as connection:
        plant_rows(connection, ROWS, users=True)
        connection.execute("CREATE TABLE tiny_codes (code text NOT NULL, label text NOT NULL)")
        connection.execute(
            "INSERT INTO tiny_codes SELECT 'code_' || g, 'label ' || g FROM generate_series(0, 19) g"
        )
        connection.execute("CREATE INDEX ix_events_user_needed ON analytics_events (user_id)")
        connection.execute("VACUUM ANALYZE")
        connection.execute("CREATE EXTENSION pg_stat_statements")
        if hypopg:
            connection.execute("CREATE EXTENSION hypopg")
        connection.execute("SELECT pg_stat_statements_reset()")
        for sql, values in WORKLOAD:
            for i in range(CALLS):
                connection.execute(sql, values(i)).fetchall()
    return url


def reset_usage(url: URL) -> None:
    """Reset the usage counters once every scan so far has landed (a session flushes them in batches
    and when it ends; the workload's calls and pg_dump's own reads among them), so that the index the
    workload needs looks unused while pg_stat_statements still has the statement."""
    with connect(url) as connection:
        for _ in range(100):
            connection.execute("SELECT pg_stat_clear_snapshot()")
            scans = connection.execute(
                "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'ix_events_user_needed'"
            ).fetchone()
            if scans and int(str(scans[0])) >= CALLS:
                break
            time.sleep(0.1)
        for _ in range(50):
            connection.execute("SELECT pg_stat_reset()")
            time.sleep(0.3)
            connection.execute("SELECT pg_stat_clear_snapshot()")
            scans = connection.execute(
                "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'ix_events_user_needed'"
            ).fetchone()
            if scans == (0,):
                return
    raise AssertionError("the usage counters kept counting after the reset")


def verify_settings(url: URL, home: Path, store: Path) -> Settings:
    return load_settings(
        _env_file=None,
        database_url=SecretStr(url_string(url)),
        home=home,
        backup_url=str(store),
        review_unused_min_age_days=0,
        review_seq_scan_min_rows=1,
    )


def workload_finding(report: IndexReviewReport, table: str) -> Finding:
    [finding] = [f for f in report.findings if f.kind is FindingKind.WORKLOAD_INDEX and f.table == table]
    return finding


@pytest.mark.parametrize("hypopg", [False, True], ids=["built-on-copy", "hypopg"])
def test_verify_recommends_the_planted_indexes_and_keeps_the_needed_one(
    statements_server: EmbeddedServer, pg_bindir: Path, tmp_path: Path, hypopg: bool
) -> None:
    if hypopg:
        require_hypopg(statements_server, pg_bindir)
    url = planted(statements_server, tmp_path / "home", hypopg=hypopg)
    settings = verify_settings(url, tmp_path / "home", tmp_path / "store")
    store = open_store(settings)
    backup(url, settings, store)
    reset_usage(url)
    with connect(url) as connection:
        indexes_before = connection.execute("SELECT indexrelid::regclass::text FROM pg_index").fetchall()

    report = verify_review(url, settings, store)

    assert report.verification is not None
    for table in ("audit_logs", "analytics_events"):
        finding = workload_finding(report, table)
        assert finding.evidence["verdict"] == "recommended", finding
        assert finding.measured_ms_before is not None
        assert finding.measured_ms_after is not None
        assert finding.measured_ms_after * 2 <= finding.measured_ms_before
        assert finding.evidence["size_bytes"] > 0
        assert finding.evidence["insert_wal_after_bytes"] > finding.evidence["insert_wal_before_bytes"] > 0
        assert finding.evidence["buffers_after"] < finding.evidence["buffers_before"]
        assert finding.recommendation.startswith("recommended: ")
    for finding in report.findings:
        if finding.evidence.get("verdict") == "recommended":
            assert finding.measured_ms_after is not None
            assert finding.measured_ms_before is not None
            assert finding.measured_ms_after < finding.measured_ms_before
    if not hypopg:  # hypopg's costing already leaves out an index the tiny table gains nothing from
        tiny = workload_finding(report, "tiny_codes")
        assert tiny.evidence["verdict"] == "not proven", tiny
        assert tiny.recommendation.startswith("not proven: ")

    kept = report.finding("unused:ix_events_user_needed")
    assert kept is not None
    assert kept.evidence["verdict"] == "kept", kept
    assert kept.recommendation.startswith("kept: statement ")
    assert kept.sql == []

    # The reviewed database was only read, and the copy is gone.
    with connect(url) as connection:
        assert (
            connection.execute("SELECT indexrelid::regclass::text FROM pg_index").fetchall() == indexes_before
        )
    with admin_connection(statements_server) as connection:
        copies = connection.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'verify\\_%%'")
        assert copies.fetchone() == (0,)


def test_verify_without_a_backup_exits_2_with_one_line(
    statements_server: EmbeddedServer, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    name = f"planted_{uuid.uuid4().hex[:10]}"
    create_database(statements_server, name)
    url = statements_server.url(name)
    env = cli_env | {"DBOPS_DATABASE_URL": url_string(url), "DBOPS_BACKUP_URL": str(tmp_path / "store")}
    result = run_cli("review-indexes", "--verify", env=env)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"dbops: error: no backup of {name} to verify the index advice on")
    assert "take one with dbops backup" in line

    for flags, wrong in (
        (("--backup", "x"), "--backup and --min-speedup choose what --verify measures on"),
        (
            ("--verify", "--min-speedup", "1"),
            "--min-speedup 1 would recommend an index that measured no faster",
        ),
    ):
        refused = run_cli("review-indexes", *flags, env=env)
        assert refused.returncode == 2, refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith(f"dbops: error: {wrong}"), line


@pytest.mark.usefixtures("prefect_api")
def test_the_flow_verifies_and_publishes_the_measurements(
    statements_server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = planted(statements_server, tmp_path / "home", hypopg=False)
    settings = verify_settings(url, tmp_path / "home", tmp_path / "store")
    store = open_store(settings)
    manifest = backup(url, settings, store)
    reset_usage(url)
    for name, value in {
        "DBOPS_DATABASE_URL": url_string(url),
        "DBOPS_HOME": str(tmp_path / "home"),
        "DBOPS_BACKUP_URL": str(tmp_path / "store"),
        "DBOPS_REVIEW_UNUSED_MIN_AGE_DAYS": "0",
        "DBOPS_REVIEW_SEQ_SCAN_MIN_ROWS": "1",
    }.items():
        monkeypatch.setenv(name, value)

    state = index_review_flow(
        database_url=flow_url(url, monkeypatch), verify=True, backup_id=manifest.backup_id, return_state=True
    )

    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, IndexReviewReport)
    assert report.verification is not None
    assert report.verification.backup == manifest.backup_id
    artifacts = flow_run_artifacts(state.state_details.flow_run_id)
    assert set(artifacts) == {"index-review-findings", "index-review", "index-review-verification"}
    rows = {row["id"]: row for row in json.loads(str(artifacts["index-review-verification"]))}
    audit = workload_finding(report, "audit_logs")
    assert rows[audit.id]["verdict"] == "recommended"
    assert rows[audit.id]["measured_ms_after"] < rows[audit.id]["measured_ms_before"]
    assert rows["unused:ix_events_user_needed"]["verdict"] == "kept"
    markdown = str(artifacts["index-review"])
    assert f"**Verified:** verified on a copy of backup {manifest.backup_id}" in markdown
    assert f"| `{audit.id}` | audit_logs | verified: recommended, measured " in markdown
    assert str(url.password) not in markdown
