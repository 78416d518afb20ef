"""Restore rehearsals on real services: pg_dump output restored by pg_restore --jobs into scratch
databases, migrated and checked, on a local directory and on moto's S3 server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyrage
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import URL

from flows.restore_rehearsal import restore_rehearsal_flow
from models.backup import BackupManifest, manifest_key, rehearsal_key
from models.errors import RestoreRefusedError
from models.marks import DatabaseMark, MarkKind
from models.rehearsal import RehearsalRecord
from models.settings import Settings
from tasks.backup.dump import backup
from tasks.postgres.embedded import EmbeddedServer, ensure_running, stop
from tasks.restore.rehearsal import rehearse
from tasks.restore.target import create_database, drop_created
from tasks.schema.migrate import migrate
from tasks.seed.upsert import seed
from tasks.storage import ObjectStore, open_store
from tests.integration.conftest import (
    admin_connection,
    connect,
    flow_run_artifacts,
    point_flows_at,
    run_cli,
    server_directory,
    url_string,
)


@pytest.fixture
def rehearsal_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={"backup_url": str(tmp_path / "backups"), "restore_jobs": 2, "bcrypt_rounds": 4}
    )


def scratch_databases(server: EmbeddedServer) -> set[str]:
    with admin_connection(server) as connection:
        rows = connection.execute("SELECT datname FROM pg_database WHERE datname LIKE 'rehearsal\\_%'")
        return {str(row[0]) for row in rows}


@pytest.fixture
def no_scratch_left(pg_server: EmbeddedServer) -> Iterator[None]:
    """Asserts, after the test, that it left no scratch database behind."""
    before = scratch_databases(pg_server)
    yield
    assert scratch_databases(pg_server) == before


def edit_manifest(store: ObjectStore, manifest: BackupManifest, **changes: object) -> None:
    edited = manifest.model_copy(update=changes)
    store.put_bytes(manifest_key(manifest.backup_id), edited.model_dump_json().encode())


def stored_record(store: ObjectStore, backup_id: str) -> RehearsalRecord:
    return RehearsalRecord.model_validate_json(store.read_bytes(rehearsal_key(backup_id)))


@pytest.mark.usefixtures("no_scratch_left")
@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_seeded_database_rehearses_with_matching_counts(
    where: str, seeded_url: URL, rehearsal_settings: Settings, request: pytest.FixtureRequest
) -> None:
    if where == "s3":
        rehearsal_settings = rehearsal_settings.model_copy(
            update={
                "backup_url": f"s3://{request.getfixturevalue('bucket')}/nightly",
                "s3_endpoint_url": request.getfixturevalue("s3_endpoint"),
            }
        )
    store = open_store(rehearsal_settings)
    manifest = backup(seeded_url, rehearsal_settings, store)

    record = rehearse(rehearsal_settings, store)

    assert record.passed, record.failure
    assert record.backup_id == manifest.backup_id
    assert record.count_mismatches == []
    assert record.jobs == 2  # parallel restore of a dump pg_dump wrote to a pipe
    assert record.migrated_to == manifest.alembic_revision == "0002"
    assert record.dump_bytes == manifest.dump_bytes
    assert record.restored_database_bytes > 0
    timings = record.timings
    assert timings.total >= timings.download + timings.restore + timings.migrate + timings.validation
    assert stored_record(store, manifest.backup_id) == record


@pytest.mark.usefixtures("no_scratch_left")
def test_a_flipped_byte_fails_before_any_database_is_created(
    seeded_url: URL, rehearsal_settings: Settings, pg_server: EmbeddedServer
) -> None:
    store = open_store(rehearsal_settings)
    manifest = backup(seeded_url, rehearsal_settings, store)
    stored = Path(str(rehearsal_settings.backup_url)) / manifest.object_key
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    with admin_connection(pg_server) as connection:
        databases_before = connection.execute("SELECT count(*) FROM pg_database").fetchone()

    record = rehearse(rehearsal_settings, store)

    assert not record.passed
    assert f"backup {manifest.backup_id} in {store.describe()} does not match its manifest" in str(
        record.failure
    )
    assert record.scratch_database is None
    assert record.timings.restore == 0
    with admin_connection(pg_server) as connection:
        assert connection.execute("SELECT count(*) FROM pg_database").fetchone() == databases_before
    assert not list(rehearsal_settings.effective_restore_work_dir.iterdir())  # nothing unpacked is left
    assert stored_record(store, manifest.backup_id).failure == record.failure


def test_a_backup_ahead_of_the_code_is_refused_and_nothing_recorded(
    migrated_url: URL, rehearsal_settings: Settings, cli_env: dict[str, str], tmp_path: Path
) -> None:
    with connect(migrated_url) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    store = open_store(rehearsal_settings)
    manifest = backup(migrated_url, rehearsal_settings, store)

    with pytest.raises(
        RestoreRefusedError, match="at revision 0099_from_the_future, which this code does not"
    ):
        rehearse(rehearsal_settings, store)
    cli = run_cli("rehearse", env=cli_env | {"DBOPS_BACKUP_URL": str(tmp_path / "backups")})
    assert cli.returncode == 2
    assert cli.stderr.strip().splitlines()[-1].startswith("dbops: error: backup ")
    assert rehearsal_key(manifest.backup_id) not in {stored.key for stored in store.list_objects("backups")}


def test_a_dump_newer_than_the_rehearsal_server_is_refused_and_nothing_touched(
    migrated_url: URL,
    rehearsal_settings: Settings,
    cli_env: dict[str, str],
    tmp_path: Path,
    pg_server: EmbeddedServer,
) -> None:
    """As when a PostgreSQL 15 server was dumped by pg_dump 18 for want of pg_dump 15: no pg_restore
    can load that dump into 15, so the rehearsal says what to install instead of failing inside
    pg_restore."""
    store = open_store(rehearsal_settings)
    manifest = backup(migrated_url, rehearsal_settings, store)
    server_major = int(manifest.server_version.split(".", 1)[0])
    edit_manifest(store, manifest, pg_dump_version=f"{server_major + 1}.0")
    databases_before = scratch_databases(pg_server)

    with pytest.raises(RestoreRefusedError) as refused:
        rehearse(rehearsal_settings, store)
    cli = run_cli("rehearse", env=cli_env | {"DBOPS_BACKUP_URL": str(tmp_path / "backups")})

    assert f"its dump loads only into PostgreSQL {server_major + 1} or later" in str(refused.value)
    assert f"postgresql-client-{server_major}" in str(refused.value)
    assert cli.returncode == 2
    assert cli.stderr.strip().splitlines()[-1] == f"dbops: error: {refused.value}"
    assert rehearsal_key(manifest.backup_id) not in {stored.key for stored in store.list_objects("backups")}
    assert scratch_databases(pg_server) == databases_before


@pytest.mark.usefixtures("no_scratch_left")
def test_an_older_backup_is_migrated_forward_and_passes(
    database_url: URL, rehearsal_settings: Settings
) -> None:
    migrate(database_url, rehearsal_settings, target="0001")
    seed(database_url, rehearsal_settings)
    store = open_store(rehearsal_settings)
    manifest = backup(database_url, rehearsal_settings, store)

    record = rehearse(rehearsal_settings, store, backup_id=manifest.backup_id)

    assert record.passed, record.failure
    assert (record.backup_revision, record.migrated_to) == ("0001", "0002")


@pytest.mark.usefixtures("no_scratch_left")
def test_counts_differing_from_the_manifest_fail_the_rehearsal(
    seeded_url: URL, rehearsal_settings: Settings
) -> None:
    store = open_store(rehearsal_settings)
    manifest = backup(seeded_url, rehearsal_settings, store)
    edit_manifest(
        store, manifest, row_counts=manifest.row_counts | {"users": manifest.row_counts["users"] + 1}
    )

    record = rehearse(rehearsal_settings, store)

    assert not record.passed
    (mismatch,) = record.count_mismatches
    assert (mismatch.table, mismatch.restored) == ("users", manifest.row_counts["users"])
    assert "row counts differ from the manifest in 1 table(s): users" in str(record.failure)


def test_keep_leaves_the_scratch_database_and_only_created_ones_are_dropped(
    seeded_url: URL, rehearsal_settings: Settings, pg_server: EmbeddedServer
) -> None:
    store = open_store(rehearsal_settings)
    backup(seeded_url, rehearsal_settings, store)

    record = rehearse(rehearsal_settings, store, keep=True)

    assert record.scratch_kept
    assert record.scratch_database in scratch_databases(pg_server)
    with connect(pg_server.url(str(record.scratch_database))) as connection:
        assert connection.execute("SELECT count(*) FROM users").fetchone() == (202,)
    with admin_connection(pg_server) as connection:
        connection.execute(f'DROP DATABASE "{record.scratch_database}" WITH (FORCE)')

    mark = DatabaseMark(kind=MarkKind.SCRATCH, run="test", created=datetime.now(UTC))
    created = create_database(
        pg_server.url("postgres"), rehearsal_settings, "rehearsal_guard_test", mark=mark
    )
    with admin_connection(pg_server) as connection:  # someone else's database under the same name
        connection.execute("DROP DATABASE rehearsal_guard_test")
        connection.execute("CREATE DATABASE rehearsal_guard_test")
    assert not drop_created(created, rehearsal_settings)
    assert "rehearsal_guard_test" in scratch_databases(pg_server)
    with admin_connection(pg_server) as connection:
        connection.execute("DROP DATABASE rehearsal_guard_test")


@pytest.mark.usefixtures("no_scratch_left")
def test_an_encrypted_backup_needs_its_identity(
    seeded_url: URL, rehearsal_settings: Settings, tmp_path: Path
) -> None:
    identity = pyrage.x25519.Identity.generate()
    encrypting = rehearsal_settings.model_copy(update={"backup_age_recipients": [str(identity.to_public())]})
    store = open_store(encrypting)
    backup(seeded_url, encrypting, store)

    with pytest.raises(RestoreRefusedError, match="is encrypted and no age identity is configured"):
        rehearse(rehearsal_settings, store)
    stranger = tmp_path / "stranger.key"
    stranger.write_text(f"# someone else\n{pyrage.x25519.Identity.generate()}\n")
    with pytest.raises(RestoreRefusedError, match=r"no identity in .* can decrypt backup"):
        rehearse(rehearsal_settings.model_copy(update={"backup_age_identity_file": stranger}), store)

    key_file = tmp_path / "backup.key"
    key_file.write_text(f"{identity}\n")
    record = rehearse(rehearsal_settings.model_copy(update={"backup_age_identity_file": key_file}), store)
    assert record.passed, record.failure


@pytest.mark.usefixtures("prefect_api", "no_scratch_left")
def test_failing_validation_fails_the_flow_and_still_drops_the_scratch_database(
    seeded_url: URL, rehearsal_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect(seeded_url) as connection:
        connection.execute("ALTER TABLE users ALTER COLUMN status SET DEFAULT 'ACTIVE'")
    store = open_store(rehearsal_settings)
    manifest = backup(seeded_url, rehearsal_settings, store)
    point_flows_at(monkeypatch, seeded_url, rehearsal_settings)

    state = restore_rehearsal_flow(return_state=True)

    assert state.is_failed()
    assert f"the rehearsal of backup {manifest.backup_id} failed" in str(state.message)
    assert "enums: users.status defaults to 'ACTIVE'::user_status" in str(state.message)
    artifacts = flow_run_artifacts(state.state_details.flow_run_id)
    assert {"restore-rehearsal", "integrity-checks", "integrity-summary"} <= set(artifacts)
    phases = json.loads(str(artifacts["restore-rehearsal"]))
    assert phases[-1]["phase"] == "recovery time (total)"
    assert not stored_record(store, manifest.backup_id).passed


def test_backups_lists_which_backups_are_proven_restorable(
    seeded_url: URL, rehearsal_settings: Settings, cli_env: dict[str, str], tmp_path: Path
) -> None:
    environment = cli_env | {"DBOPS_BACKUP_URL": str(tmp_path / "backups")}
    store = open_store(rehearsal_settings)
    never = backup(seeded_url, rehearsal_settings, store)
    proven = backup(seeded_url, rehearsal_settings, store)

    rehearsed = run_cli("rehearse", "--backup", proven.backup_id, env=environment)
    listed = run_cli("backups", env=environment)
    as_json = json.loads(run_cli("backups", "--json", env=environment).stdout)

    assert rehearsed.returncode == 0, rehearsed.stderr
    assert f"rehearsal of backup {proven.backup_id} on 127.0.0.1:" in rehearsed.stdout
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert "restored in " in lines[proven.backup_id]
    assert lines[never.backup_id].endswith("never")
    rehearsed_ids = {entry["backup_id"]: entry["rehearsal"] is not None for entry in as_json}
    assert rehearsed_ids == {proven.backup_id: True, never.backup_id: False}
    assert str(seeded_url.password) not in rehearsed.stdout + rehearsed.stderr


@pytest.mark.usefixtures("no_scratch_left")
def test_rehearsals_can_restore_onto_another_server(
    seeded_url: URL, rehearsal_settings: Settings, pg_bindir: Path
) -> None:
    store = open_store(rehearsal_settings)
    backup(seeded_url, rehearsal_settings, store)
    with server_directory() as base_dir:
        other = ensure_running(base_dir, pg_bindir, durable=False)
        try:
            elsewhere = rehearsal_settings.model_copy(
                update={"rehearsal_database_url": SecretStr(url_string(other.url("postgres")))}
            )
            record = rehearse(elsewhere, store)
            left_behind = scratch_databases(other)
        finally:
            stop(base_dir, pg_bindir)

    assert record.passed, record.failure
    assert record.server == f"127.0.0.1:{other.port}"
    assert left_behind == set()
