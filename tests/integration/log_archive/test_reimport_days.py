"""``restore-archive --from D --to D`` brings back exactly the rows of day D, wherever they were filed.

Synthetic ids are not in time order, so every batch spans many days and is filed under the day of its
oldest row only; the rows of most days sit in batches filed under another day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.engine import URL

from models.log_archive import batch_day
from models.settings import Settings
from tasks.log_archive.archiving import archive_table
from tasks.log_archive.reimport import import_archive
from tasks.seed.synth import synth
from tasks.storage import open_store
from tests.helpers import synth_plan
from tests.integration.log_archive.conftest import batch_keys, row_hashes

UNTIL = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def spread_url(migrated_url: URL, archive_settings: Settings) -> URL:
    """3,000 audit logs spread over the 200 days before 2025, in ids that ignore time."""
    synth(
        migrated_url, archive_settings, synth_plan(users=10, audit_logs=3_000, days=200, seed=9, until=UNTIL)
    )
    return migrated_url


def day_rows(url: URL, table: str, day: date) -> dict[int, str]:
    return row_hashes(url, table, f"(created_at AT TIME ZONE 'UTC')::date = DATE '{day.isoformat()}'")


def test_a_day_comes_back_row_for_row_from_batches_filed_under_other_days(
    spread_url: URL, archive_settings: Settings
) -> None:
    store = open_store(archive_settings)
    wanted_days = [date(2024, 7, 1), date(2024, 10, 15), date(2024, 12, 31)]
    expected = {day: day_rows(spread_url, "audit_logs", day) for day in wanted_days}
    assert all(expected.values()), "the synthetic data must have rows on each of these days"

    archive_table(spread_url, archive_settings, store, "audit_logs", older_than_days=1)

    folder_days = {batch_day(key) for key in batch_keys(store)}
    for day in wanted_days:
        assert day not in folder_days, "the day's rows must sit in batches filed under other days"
        staging = f"review_{day:%Y%m%d}"
        outcome = import_archive(spread_url, archive_settings, store, "audit_logs", day, day, into=staging)
        assert row_hashes(spread_url, staging) == expected[day], day
        assert outcome.rows_read == outcome.rows_inserted == len(expected[day])


def test_a_span_of_days_includes_both_ends_and_nothing_outside(
    spread_url: URL, archive_settings: Settings
) -> None:
    store = open_store(archive_settings)
    span = row_hashes(
        spread_url,
        "audit_logs",
        "(created_at AT TIME ZONE 'UTC')::date BETWEEN DATE '2024-08-01' AND DATE '2024-08-31'",
    )
    archive_table(spread_url, archive_settings, store, "audit_logs", older_than_days=1)

    import_archive(
        spread_url, archive_settings, store, "audit_logs", date(2024, 8, 1), date(2024, 8, 31), into="august"
    )

    assert row_hashes(spread_url, "august") == span
