"""Log archiving against real services: PostgreSQL, moto's S3 server (directly and through a faulty
proxy), a local directory, and the dbops command line killed mid-run."""

from __future__ import annotations

import gzip
import json
import os
import signal
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import URL

from flows.archive_logs import archive_logs_flow
from models.errors import ArchiveVerificationError
from models.log_archive import ArchiveRun, run_key
from models.settings import Settings
from tasks.log_archive.archiving import archive_table
from tasks.log_archive.reimport import import_archive
from tasks.storage import open_store
from tests.integration.conftest import connect, point_flows_at, run_cli
from tests.integration.log_archive.conftest import (
    archive_runs,
    archived_ids,
    batch_keys,
    row_hashes,
    spawn_archiver,
)
from tests.integration.s3_proxy import faulty_s3_proxy


def vacuumed_size(url: URL, table: str) -> int:
    """The table's size on disk, once a VACUUM has made the archived rows' space reusable.

    Whether the size falls depends on where those rows were: VACUUM gives back only the empty pages at
    the end of a table. Rows written after the archived ones keep the last page, so on PostgreSQL 15 it
    does not fall. On 16 and later it did only because COPY extends a table by many pages at once and
    VACUUM cuts off the pages that were never used. What holds on every major is that the table was
    vacuumed and that the size reported is its own.
    """
    with connect(url) as connection:
        (row,) = connection.execute(
            "SELECT vacuum_count, pg_total_relation_size(relid) FROM pg_stat_user_tables WHERE relname = %s",
            (table,),
        ).fetchall()
    assert int(str(row[0])) >= 1, f"{table} was not vacuumed"
    return int(str(row[1]))


def test_round_trip_every_archived_row_comes_back_equal(logs_url: URL, archive_settings: Settings) -> None:
    old = row_hashes(logs_url, "audit_logs", "created_at < now() - interval '365 days'")
    new = row_hashes(logs_url, "audit_logs", "created_at >= now() - interval '1 day'")
    store = open_store(archive_settings)

    outcome = archive_table(logs_url, archive_settings, store, "audit_logs")

    assert (outcome.rows_archived, outcome.batches) == (2_000, 3)
    assert row_hashes(logs_url, "audit_logs") == new
    assert vacuumed_size(logs_url, "audit_logs") == outcome.table_bytes_after
    imported = import_archive(
        logs_url,
        archive_settings,
        store,
        "audit_logs",
        date(2024, 1, 1),
        date(2024, 12, 31),
        into="audit_review",
    )
    assert (imported.rows_read, imported.rows_inserted) == (2_000, 2_000)
    assert row_hashes(logs_url, "audit_review") == old
    line = gzip.decompress(store.read_bytes(batch_keys(store)[0]))
    first = json.loads(line.splitlines()[0])
    assert set(first) == {"id", "actor_id", "action", "entity_type", "entity_id", "payload", "created_at"}
    assert isinstance(first["payload"], dict)
    assert datetime.fromisoformat(first["created_at"]).utcoffset() == timedelta(0)


def test_importing_into_the_original_table_skips_ids_already_there(
    logs_url: URL, archive_settings: Settings
) -> None:
    store = open_store(archive_settings)
    old = row_hashes(logs_url, "audit_logs", "created_at < now() - interval '365 days'")
    archive_table(logs_url, archive_settings, store, "audit_logs")

    first = import_archive(
        logs_url, archive_settings, store, "audit_logs", date(2024, 5, 1), date(2024, 5, 31)
    )
    again = import_archive(
        logs_url, archive_settings, store, "audit_logs", date(2024, 5, 1), date(2024, 5, 31)
    )

    assert first.rows_inserted == 2_000
    assert (again.rows_read, again.rows_inserted) == (2_000, 0)
    assert row_hashes(logs_url, "audit_logs", "created_at < now() - interval '365 days'") == old


def test_a_store_returning_other_bytes_deletes_nothing(
    logs_url: URL, archive_settings: Settings, s3_endpoint: str, bucket: str
) -> None:
    before = row_hashes(logs_url, "audit_logs")
    with faulty_s3_proxy(s3_endpoint, "corrupt") as proxy:
        faulty = archive_settings.model_copy(
            update={"backup_url": f"s3://{bucket}/logs", "s3_endpoint_url": proxy.endpoint}
        )
        with pytest.raises(ArchiveVerificationError, match=r"the store returned .* not the .* written"):
            archive_table(logs_url, faulty, open_store(faulty), "audit_logs")

    assert row_hashes(logs_url, "audit_logs") == before


def test_a_crash_between_upload_and_delete_loses_and_duplicates_nothing(
    logs_url: URL, archive_settings: Settings, s3_endpoint: str, bucket: str, cli_env: dict[str, str]
) -> None:
    old = set(row_hashes(logs_url, "audit_logs", "created_at < now() - interval '365 days'"))
    direct = archive_settings.model_copy(
        update={"backup_url": f"s3://{bucket}/logs", "s3_endpoint_url": s3_endpoint}
    )
    store = open_store(direct)
    with faulty_s3_proxy(s3_endpoint, "hold") as proxy:
        archiver = spawn_archiver(cli_env, bucket, proxy.endpoint)
        assert proxy.archive_read.wait(60), archiver.communicate()
        os.kill(archiver.pid, signal.SIGKILL)  # uploaded, verifying, not yet deleted
        archiver.wait(30)
    (crashed,) = archive_runs(store)
    assert not crashed.complete
    assert crashed.batches == []
    assert len(archived_ids(store)) == 700  # the first batch was uploaded before the crash
    assert len(row_hashes(logs_url, "audit_logs", "created_at < now() - interval '365 days'")) == 2_000

    outcome = archive_table(logs_url, direct, store, "audit_logs")

    assert outcome.resumed_run == crashed.run_id
    assert outcome.rows_archived == 2_000
    assert row_hashes(logs_url, "audit_logs", "created_at < now() - interval '365 days'") == {}
    ids = archived_ids(store)
    assert sorted(ids) == sorted(old)  # each row exactly once
    resumed = ArchiveRun.model_validate_json(store.read_bytes(run_key(crashed.run_id, crashed.source)))
    assert resumed.complete
    assert resumed.cutoff == crashed.cutoff


def test_the_cut_off_is_exact_to_the_second_in_the_configured_timezone(
    migrated_url: URL, archive_settings: Settings
) -> None:
    kolkata = archive_settings.model_copy(update={"timezone": "Asia/Kolkata"})  # UTC+05:30
    now = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)  # 08:30 on the 27th in Kolkata
    line = datetime(2026, 11, 17, 0, 0, tzinfo=ZoneInfo("Asia/Kolkata"))  # 2026-11-16 18:30 UTC
    with connect(migrated_url) as connection:
        for second in (-1, 0, 1):
            connection.execute(
                "INSERT INTO audit_logs (action, entity_type, entity_id, created_at) "
                "VALUES ('a', 'b', %s, %s)",
                (str(second), line + timedelta(seconds=second)),
            )

    outcome = archive_table(
        migrated_url, kolkata, open_store(kolkata), "audit_logs", older_than_days=10, now=now
    )

    assert outcome.cutoff == line
    assert outcome.cutoff.isoformat() == "2026-11-17T00:00:00+05:30"
    assert outcome.rows_archived == 1
    with connect(migrated_url) as connection:
        left = [row[0] for row in connection.execute("SELECT entity_id FROM audit_logs ORDER BY created_at")]
    assert left == ["0", "1"]


def test_rows_inserted_while_archiving_survive(logs_url: URL, archive_settings: Settings) -> None:
    small_batches = archive_settings.model_copy(update={"archive_batch_size": 50})
    stop = threading.Event()
    inserted: list[int] = []

    def write() -> None:
        with connect(logs_url) as connection:
            while not stop.is_set():
                row = connection.execute(
                    "INSERT INTO audit_logs (action, entity_type) VALUES ('live', 'user') RETURNING id"
                ).fetchone()
                assert row is not None
                inserted.append(int(str(row[0])))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        outcome = archive_table(logs_url, small_batches, open_store(small_batches), "audit_logs")
    finally:
        stop.set()
        writer.join()

    assert outcome.rows_archived == 2_000
    assert len(inserted) > 10
    with connect(logs_url) as connection:
        live = connection.execute("SELECT count(*) FROM audit_logs WHERE action = 'live'").fetchone()
    assert live == (len(inserted),)


def test_dry_run_writes_nothing_and_an_empty_table_is_nothing_to_do(
    logs_url: URL, archive_settings: Settings, cli_env: dict[str, str], tmp_path: Path
) -> None:
    before = row_hashes(logs_url, "analytics_events")
    environment = cli_env | {"DBOPS_BACKUP_URL": str(tmp_path / "store")}

    dry = run_cli("archive-logs", "--dry-run", env=environment)

    assert dry.returncode == 0, dry.stderr
    assert "audit_logs: would archive 2,000 rows older than" in dry.stdout
    assert "analytics_events: would archive 300 rows older than" in dry.stdout
    assert not (tmp_path / "store").exists()
    assert row_hashes(logs_url, "analytics_events") == before

    with connect(logs_url) as connection:
        connection.execute("DELETE FROM analytics_events")
    empty = archive_table(logs_url, archive_settings, open_store(archive_settings), "analytics_events")
    assert (empty.rows_archived, empty.batches) == (0, 0)


def test_bad_input_is_one_line_and_exit_2(logs_url: URL, cli_env: dict[str, str]) -> None:
    for arguments, message in [
        (("archive-logs", "--table", "users"), "'users' is not an archived table"),
        (
            ("restore-archive", "--table", "audit_logs", "--from", "2024-06-01", "--to", "2024-05-01"),
            "--from 2024-06-01 is after --to 2024-05-01",
        ),
        (
            ("restore-archive", "--table", "audit_logs", "--from", "June", "--to", "2024-05-01"),
            "--from 'June' is not a date",
        ),
    ]:
        result = run_cli(*arguments, env=cli_env)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(f"dbops: error: {message}")


@pytest.mark.usefixtures("prefect_api")
def test_the_flow_archives_both_tables_in_the_maintenance_slot(
    logs_url: URL, archive_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_flows_at(monkeypatch, logs_url, archive_settings)

    state = archive_logs_flow(return_state=True)

    assert state.is_completed(), state.message
    outcomes = state.result()
    assert [(outcome.table, outcome.rows_archived) for outcome in outcomes] == [
        ("audit_logs", 2_000),
        ("analytics_events", 300),
    ]
