"""Archive keys, day folders, the cut-off in a time zone, and the deterministic compressor."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime

from models.log_archive import batch_day, batch_key, cutoff, run_key
from tasks.log_archive.gzip_thread import BLOCK_BYTES, BackgroundGzip


def test_a_batch_key_is_dated_by_its_oldest_row_and_read_back() -> None:
    key = batch_key("audit_logs", datetime(2024, 5, 3, 23, 59, tzinfo=UTC), 101, 200)

    assert key == "archive/audit_logs/2024/05/03/101-200.jsonl.gz"
    assert batch_day(key) == date(2024, 5, 3)
    assert batch_day(run_key("audit_logs-20260101T000000Z-abcdef")) is None
    assert batch_day("archive/audit_logs/2024/13/03/1-2.jsonl.gz") is None


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
