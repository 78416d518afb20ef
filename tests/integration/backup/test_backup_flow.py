"""The ``backup`` flow on a real Prefect API: manifest returned, artifacts published, retention applied."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from flows.backup import backup_flow
from models.backup import BackupManifest
from tests.integration.conftest import flow_run_artifacts, flow_url

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_backup_flow_publishes_progress_manifest_link_and_recent_backups(
    seeded_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBOPS_BACKUP_URL", str(tmp_path / "backups"))
    monkeypatch.setenv("DBOPS_BACKUP_KEEP_LAST", "1")
    monkeypatch.setenv("DBOPS_BACKUP_KEEP_DAILY", "0")
    monkeypatch.setenv("DBOPS_BACKUP_KEEP_WEEKLY", "0")
    monkeypatch.setenv("DBOPS_BACKUP_KEEP_MONTHLY", "0")

    first = backup_flow(database_url=flow_url(seeded_url, monkeypatch), return_state=True)
    second = backup_flow(database_url=flow_url(seeded_url, monkeypatch), return_state=True)

    assert first.is_completed(), first.message
    assert second.is_completed(), second.message
    newest = second.result()
    assert isinstance(newest, BackupManifest)
    artifacts = flow_run_artifacts(second.state_details.flow_run_id)
    assert set(artifacts) == {"progress", "backup-manifest", "recent-backups"}
    assert float(str(artifacts["progress"])) == 100.0
    assert f"backups/{newest.backup_id}/manifest.json" in str(artifacts["backup-manifest"])
    assert newest.backup_id in str(artifacts["recent-backups"])
    remaining = sorted(path.name for path in (tmp_path / "backups" / "backups").iterdir())
    assert remaining == [newest.backup_id], "keep-last 1 pruned the first backup after the second completed"


def test_a_prefect_api_failing_to_take_progress_never_fails_the_backup(
    seeded_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DBOPS_BACKUP_URL", str(tmp_path / "backups"))
    calls = []

    def hiccup(*arguments: object, **keywords: object) -> None:
        calls.append(arguments)
        raise RuntimeError("503 Service Unavailable from the Prefect API")

    # Prefect's own function, as this module calls it: the API is the fault, not dbops.
    monkeypatch.setattr("flows.backup.update_progress_artifact", hiccup)

    state = backup_flow(database_url=flow_url(seeded_url, monkeypatch), return_state=True)

    assert state.is_completed(), state.message
    assert calls, "the progress update was attempted"
    assert isinstance(state.result(), BackupManifest)
    warnings = [r.getMessage() for r in caplog.records if "could not publish the progress" in r.getMessage()]
    assert len(warnings) == 1, "warned once, however often it failed"
