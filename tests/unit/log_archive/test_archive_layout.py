"""Archive keys, day folders, the cut-off in a time zone, and the deterministic compressor."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime

import pytest

from models.backup import BackupSource
from models.errors import ConfigurationError
from models.log_archive import (
    BatchKey,
    batch_day,
    batch_key,
    choose_source,
    cutoff,
    parse_batch_key,
    run_key,
)
from tasks.log_archive.gzip_thread import BLOCK_BYTES, BackgroundGzip

PRODUCTION = BackupSource(system_identifier="7312345678901234567", database="platform")
STAGING = BackupSource(system_identifier="7398765432109876543", database="platform")
DIGEST = "53f21e954c7e265e8b21c85c2960fd58d59897ba38c51dcf833091171e4af6eb"


def test_a_batch_key_names_its_source_is_dated_by_its_oldest_row_and_read_back() -> None:
    key = batch_key(PRODUCTION, "audit_logs", datetime(2024, 5, 3, 23, 59, tzinfo=UTC), 101, 200, DIGEST)

    assert key == "archive/7312345678901234567/platform/audit_logs/2024/05/03/101-200-53f21e954c7e.jsonl.gz"
    assert parse_batch_key(key) == BatchKey(PRODUCTION, "audit_logs", date(2024, 5, 3))
    assert key != batch_key(STAGING, "audit_logs", datetime(2024, 5, 3, tzinfo=UTC), 101, 200, DIGEST)
    assert batch_day(run_key("audit_logs-20260101T000000Z-abcdef", PRODUCTION)) is None
    assert run_key("audit_logs-20260101T000000Z-abcdef", PRODUCTION) == (
        "archive/7312345678901234567/platform/runs/audit_logs-20260101T000000Z-abcdef.json"
    )


def test_a_database_name_is_one_segment_whatever_it_holds() -> None:
    odd = BackupSource(system_identifier="7312345678901234567", database="uni/ver sité")
    key = batch_key(odd, "audit_logs", datetime(2024, 5, 3, tzinfo=UTC), 1, 2, DIGEST)

    assert key.split("/")[2] == "uni%2Fver%20sit%C3%A9"
    assert parse_batch_key(key) == BatchKey(odd, "audit_logs", date(2024, 5, 3))


def test_keys_of_earlier_releases_parse_as_batches_without_a_source() -> None:
    assert parse_batch_key("archive/audit_logs/2025/10/27/2-3000.jsonl.gz") == BatchKey(
        None, "audit_logs", date(2025, 10, 27)
    )
    old_run = "archive/runs/audit_logs-20261201T221605Z-993a53.json"
    assert run_key("audit_logs-20261201T221605Z-993a53") == old_run
    assert parse_batch_key(old_run) is None
    assert batch_day("archive/audit_logs/2024/13/03/1-2.jsonl.gz") is None


def test_a_restore_reads_its_own_source_unless_another_is_named() -> None:
    other_name = BackupSource(system_identifier=STAGING.system_identifier, database="reporting")
    held = [PRODUCTION, STAGING, other_name]

    assert choose_source(PRODUCTION, None, held) == PRODUCTION
    assert choose_source(PRODUCTION, None, []) == PRODUCTION  # nothing archived yet: nothing read
    assert choose_source(PRODUCTION, "platform", held) == PRODUCTION  # this server's, by name
    assert choose_source(PRODUCTION, "reporting", held) == other_name  # the one server with it
    assert choose_source(PRODUCTION, f"{STAGING.system_identifier}/platform", held) == STAGING
    fresh_server = BackupSource(system_identifier="7300000000000000001", database="platform")
    with pytest.raises(ConfigurationError, match="archives of 2 databases named platform, none on this"):
        choose_source(fresh_server, "platform", held)
    with pytest.raises(ConfigurationError, match="the store holds no archive of analytics"):
        choose_source(PRODUCTION, "analytics", held)
    with pytest.raises(ConfigurationError, match="no archive of 1/platform"):
        choose_source(PRODUCTION, "1/platform", held)


def test_the_cut_off_is_the_start_of_the_local_day() -> None:
    late_evening_utc = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # already the 29th in Berlin

    line = cutoff(late_evening_utc, "Europe/Berlin", 1)

    assert line.isoformat() == "2026-03-28T00:00:00+01:00"
    assert cutoff(late_evening_utc, "UTC", 1).isoformat() == "2026-03-27T00:00:00+00:00"
    # Across the switch to summer time the day still starts at local midnight.
    assert cutoff(datetime(2026, 3, 30, 12, tzinfo=UTC), "Europe/Berlin", 0).isoformat() == (
        "2026-03-30T00:00:00+02:00"
    )


def test_background_gzip_gives_the_same_bytes_however_the_input_arrives() -> None:
    rows = [f'{{"id": {n}, "payload": {{"n": "{"x" * (n % 97)}"}}}}\n'.encode() for n in range(60_000)]
    whole = b"".join(rows)
    assert len(whole) > 2 * BLOCK_BYTES

    with BackgroundGzip(6) as one_by_one:
        for row in rows:
            one_by_one.write(row)
        first = one_by_one.finish()
    with BackgroundGzip(6) as all_at_once:
        all_at_once.write(memoryview(whole))
        second = all_at_once.finish()

    assert first == second
    assert gzip.decompress(first) == whole
