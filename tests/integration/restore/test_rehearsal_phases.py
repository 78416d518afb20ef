"""A rehearsal's phases: each timed in its record and log, and the checks that run beside the index
builds failing the rehearsal as surely as the checks after them."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from models.backup import BackupManifest, PartKind, manifest_key, rehearsal_key
from models.rehearsal import RehearsalRecord
from models.settings import Settings
from tasks.backup.dump import backup
from tasks.postgres.embedded import EmbeddedServer
from tasks.restore.rehearsal import rehearse
from tasks.storage import ObjectStore, open_store
from tests.integration.conftest import connect, drop_databases_like, run_cli

_PHASES_LOGGED = ("prepare", "download", "pre-data", "data", "post-data", "early-checks", "migrate")


@pytest.fixture
def parts_settings(settings: Settings, tmp_path: Path) -> Settings:
    """A store of its own, and backups in parts (pre-data, two data groups, post-data)."""
    return settings.model_copy(
        update={
            "backup_url": str(tmp_path / "backups"),
            "backup_parallelism": 2,
            "restore_jobs": 2,
            "bcrypt_rounds": 4,
        }
    )


def multi_part_backup(url: URL, settings: Settings, store: ObjectStore) -> BackupManifest:
    manifest = backup(url, settings, store)
    assert [part.kind for part in manifest.parts][1:-1] == [PartKind.DATA, PartKind.DATA]
    return manifest


def test_the_record_the_log_and_the_command_show_every_phase(
    seeded_url: URL,
    parts_settings: Settings,
    cli_env: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = open_store(parts_settings)
    manifest = multi_part_backup(seeded_url, parts_settings, store)

    with caplog.at_level(logging.INFO):
        record = rehearse(parts_settings, store)

    assert record.passed, record.failure
    timings = record.timings
    for phase in ("prepare", "pre_data", "data", "post_data", "early_checks", "validation", "drop"):
        assert getattr(timings, phase) > 0, phase
    assert timings.restore >= timings.pre_data + timings.data + timings.post_data
    assert timings.total >= timings.restore + timings.counts + timings.migrate + timings.validation
    stored = RehearsalRecord.model_validate_json(store.read_bytes(rehearsal_key(manifest.backup_id)))
    assert stored.timings == timings
    (line,) = [entry.getMessage() for entry in caplog.records if "rehearsal of backup" in entry.getMessage()]
    assert all(f"{phase} " in line for phase in _PHASES_LOGGED), line
    # Nothing of a copy dropped after its proof needs the WAL; the restore loaded it unlogged.
    assert re.search(r"made ([1-9]\d*) table\(s\) of the scratch copy unlogged", caplog.text)

    environment = cli_env | {"DBOPS_BACKUP_URL": str(tmp_path / "backups"), "DBOPS_BCRYPT_ROUNDS": "4"}
    shown = run_cli("rehearse", "--json", env=environment, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["timings"]["post_data"] > 0
    summary = run_cli("rehearse", env=environment, timeout=300)
    assert "post-data" in summary.stdout
    assert "beside it, counts and data checks" in summary.stdout


def test_an_orphan_found_beside_the_index_builds_fails_the_rehearsal(
    seeded_url: URL, parts_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with connect(seeded_url) as connection:
        connection.execute("ALTER TABLE applications DROP CONSTRAINT fk_applications_user_id_users")
        connection.execute(
            "INSERT INTO applications (user_id, course_id) SELECT gen_random_uuid(), id FROM courses LIMIT 1"
        )
    store = open_store(parts_settings)
    manifest = multi_part_backup(seeded_url, parts_settings, store)

    with caplog.at_level(logging.INFO):
        record = rehearse(parts_settings, store)

    assert not record.passed
    assert record.count_mismatches == []
    assert "1 row(s) of applications (user_id) -> users point at no users row" in str(record.failure)
    assert str(record.failure).startswith("1 integrity check(s) failed: relations: ")
    assert record.timings.early_checks > 0
    # Counted beside the index builds: the check after the migration reused that count.
    early = [entry for entry in caplog.records if "data checks beside the index builds" in entry.getMessage()]
    assert len(early) == 1
    assert "left for the full validation" not in early[0].getMessage()
    assert not RehearsalRecord.model_validate_json(store.read_bytes(rehearsal_key(manifest.backup_id))).passed


def test_a_part_count_differing_from_the_manifest_fails_the_rehearsal_counted_beside_post_data(
    seeded_url: URL, parts_settings: Settings
) -> None:
    store = open_store(parts_settings)
    manifest = multi_part_backup(seeded_url, parts_settings, store)
    planted = manifest.model_copy(
        update={"row_counts": manifest.row_counts | {"courses": manifest.row_counts["courses"] - 1}}
    )
    store.put_bytes(manifest_key(manifest.backup_id), planted.model_dump_json().encode())

    record = rehearse(parts_settings, store)

    assert not record.passed
    (mismatch,) = record.count_mismatches
    assert (mismatch.table, mismatch.manifest, mismatch.restored) == (
        "courses",
        manifest.row_counts["courses"] - 1,
        manifest.row_counts["courses"],
    )
    assert str(record.failure).startswith("row counts differ from the manifest in 1 table(s): courses")
    assert record.timings.early_checks > 0


def test_a_kept_copy_stays_logged(
    seeded_url: URL, parts_settings: Settings, pg_server: EmbeddedServer
) -> None:
    store = open_store(parts_settings)
    multi_part_backup(seeded_url, parts_settings, store)

    record = rehearse(parts_settings, store, keep=True)

    assert record.passed, record.failure
    assert record.scratch_database is not None
    try:
        with connect(pg_server.url(record.scratch_database)) as connection:
            rows = connection.execute(
                "SELECT c.relname, c.relpersistence FROM pg_class c "
                "WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace"
            ).fetchall()
        persistence = {str(name): str(kind) for name, kind in rows}
    finally:
        drop_databases_like(pg_server, record.scratch_database)
    assert persistence["audit_logs"] == "p"
    assert set(persistence.values()) == {"p"}, persistence


def test_a_copy_with_a_partitioned_table_stays_logged(
    seeded_url: URL, parts_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with connect(seeded_url) as connection:
        connection.execute("CREATE SCHEMA side")
        connection.execute(
            "CREATE TABLE side.readings (day date NOT NULL, value int) PARTITION BY RANGE (day)"
        )
        connection.execute(
            "CREATE TABLE side.readings_2026 PARTITION OF side.readings "
            "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"
        )
        connection.execute("INSERT INTO side.readings VALUES ('2026-05-01', 1)")
    store = open_store(parts_settings)
    multi_part_backup(seeded_url, parts_settings, store)

    with caplog.at_level(logging.INFO):
        record = rehearse(parts_settings, store)

    assert record.passed, record.failure
    assert "the tables stay logged: the copy has a partitioned table or a publication" in caplog.text
    assert "of the scratch copy unlogged" not in caplog.text
