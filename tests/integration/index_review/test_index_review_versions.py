"""The review on the suite's server, whichever supported major it is (``make test`` runs the suite on
two): PostgreSQL 16 and later say how long ago a relation was last scanned; 15 cannot, and the review
says so and still reports every finding."""

from __future__ import annotations

from sqlalchemy.engine import URL

from models.settings import Settings
from tasks.index_review.runner import review_indexes
from tasks.index_review.server_versions import LAST_SCAN_TIMES, unjudged
from tests.integration.conftest import connect, run_cli
from tests.integration.index_review.test_index_review import by_id, flush_statistics


def test_each_major_reports_what_its_statistics_can_tell(
    migrated_url: URL, settings: Settings, cli_env: dict[str, str]
) -> None:
    with connect(migrated_url) as connection:
        (version,) = connection.execute("SHOW server_version_num").fetchall()
        version_num = int(str(version[0]))
        connection.execute("CREATE TABLE scanned (id int PRIMARY KEY, kind int, note int)")
        connection.execute("INSERT INTO scanned SELECT g, g % 7, g % 11 FROM generate_series(1, 20000) AS g")
        connection.execute("CREATE INDEX ix_scanned_kind ON scanned (kind)")
        flush_statistics(connection)  # before ANALYZE, or the insert is counted on top of its estimate
        connection.execute("ANALYZE scanned")
        # Scan ix_scanned_kind while it is the only index on kind, so the planner has no other choice;
        # the index that makes it redundant comes after.
        connection.execute("SET enable_seqscan = off")
        connection.execute("SELECT count(*) FROM scanned WHERE kind = 3")
        connection.execute("RESET enable_seqscan")
        for note in range(10):
            connection.execute("SELECT count(*) FROM scanned WHERE note = %s", (note,))
        connection.execute("CREATE INDEX ix_scanned_kind_id ON scanned (kind, id)")
        flush_statistics(connection)

    report = review_indexes(migrated_url, settings)
    cli = run_cli("review-indexes", env=cli_env)

    redundant = by_id(report)["redundant:ix_scanned_kind"]
    sequential = by_id(report)["seq-scans:scanned"]
    assert redundant.evidence["scans"] == 1
    assert redundant.evidence["covered_by"] == "ix_scanned_kind_id"
    assert sequential.evidence["sequential_scans"] >= 10
    assert cli.returncode == 0, cli.stderr
    assert "  redundant:ix_scanned_kind\n" in cli.stdout
    if version_num >= LAST_SCAN_TIMES:
        assert report.warnings == []
        assert 0 <= redundant.evidence["last_scan_age_days"] < 1
        assert 0 <= sequential.evidence["last_sequential_scan_age_days"] < 1
        assert "warning:" not in cli.stdout
    else:
        assert report.warnings == unjudged(version_num)
        assert report.warnings[0].startswith("index usage age is unknown before PostgreSQL 16")
        assert redundant.evidence["last_scan_age_days"] is None
        assert sequential.evidence["last_sequential_scan_age_days"] is None
        assert f"warning: {report.warnings[0]}\n" in cli.stdout
