"""Stored formats last: manifests, rehearsal records and log-archive runs of earlier releases still read."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.backup import BackupManifest
from models.log_archive import ArchiveRun
from models.rehearsal import RehearsalRecord

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "formats"
RELEASES = sorted(path.name for path in FIXTURES.iterdir() if path.is_dir())


@pytest.mark.parametrize("release", RELEASES)
def test_a_backup_manifest_of_an_earlier_release_reads(release: str) -> None:
    manifest = BackupManifest.model_validate_json((FIXTURES / release / "manifest.json").read_bytes())
    assert manifest.backup_id == "20261201T221601Z-a2fec3"
    assert manifest.object_key == f"backups/{manifest.backup_id}/dump.pgcustom.zst"
    assert manifest.dump_bytes == 693_093
    assert manifest.row_counts["audit_logs"] == 3_000


@pytest.mark.parametrize("release", RELEASES)
def test_a_rehearsal_record_of_an_earlier_release_reads(release: str) -> None:
    record = RehearsalRecord.model_validate_json((FIXTURES / release / "rehearsal.json").read_bytes())
    assert record.passed
    # 0.1.0 called the unpacked dump's size archive_bytes; the field is dump_bytes now.
    assert record.dump_bytes == 693_093
    assert record.timings.total == pytest.approx(0.792)


def test_a_rehearsal_record_written_now_reads_back_under_the_new_name() -> None:
    old = RehearsalRecord.model_validate_json((FIXTURES / "0.1.0" / "rehearsal.json").read_bytes())
    written = old.model_dump_json()
    assert '"dump_bytes":693093' in written
    assert "archive_bytes" not in written
    assert RehearsalRecord.model_validate_json(written) == old


@pytest.mark.parametrize("release", RELEASES)
def test_a_log_archive_run_of_an_earlier_release_reads(release: str) -> None:
    run = ArchiveRun.model_validate_json((FIXTURES / release / "log_archive_run.json").read_bytes())
    assert run.complete
    assert run.table == "audit_logs"
    assert run.source is None  # recorded from 0.2.0 on; such a run is never resumed, and still imports
    assert [batch.key for batch in run.batches] == ["archive/audit_logs/2025/10/27/2-3000.jsonl.gz"]
    assert run.batches[0].rows == 1_474
