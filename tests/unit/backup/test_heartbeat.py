"""What the incomplete-backup sweep does with a backup it finds, from its heartbeat and its last write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.backup import BackupSource
from models.heartbeat import STALE_AFTER_REFRESHES, BackupHeartbeat, Verdict, judge, same_database

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
GRACE = timedelta(hours=6)
PLATFORM = BackupSource(system_identifier="7301", database="platform")
STAGING = BackupSource(system_identifier="9902", database="platform")


def heartbeat(
    refreshed_ago: timedelta, *, source: BackupSource = PLATFORM, guarded: bool = True
) -> BackupHeartbeat:
    return BackupHeartbeat(
        source=source,
        host="worker-1",
        pid=4242,
        guarded=guarded,
        started_at=NOW - timedelta(hours=12),
        refreshed_at=NOW - refreshed_ago,
        refresh_seconds=60,
    )


def test_a_fresh_heartbeat_keeps_a_backup_whose_parts_are_older_than_the_grace_period() -> None:
    assert judge(heartbeat(timedelta(seconds=30)), NOW - timedelta(hours=7), NOW, GRACE) is Verdict.RUNNING


def test_a_heartbeat_is_stale_after_five_refresh_intervals() -> None:
    bound = timedelta(seconds=60 * STALE_AFTER_REFRESHES)
    old_parts = NOW - timedelta(hours=7)
    assert judge(heartbeat(bound - timedelta(seconds=1)), old_parts, NOW, GRACE) is Verdict.RUNNING
    assert judge(heartbeat(bound + timedelta(seconds=1)), old_parts, NOW, GRACE) is Verdict.ABANDONED


def test_the_stores_date_of_the_marker_counts_when_the_writers_clock_is_behind() -> None:
    # The writer's clock says 10 minutes ago; the store dated the marker's rewrite 20 s ago.
    assert judge(heartbeat(timedelta(minutes=10)), NOW - timedelta(seconds=20), NOW, GRACE) is Verdict.RUNNING


def test_the_guard_of_its_database_makes_a_backup_dead_at_once_however_fresh() -> None:
    fresh = heartbeat(timedelta(seconds=5))
    assert judge(fresh, NOW, NOW, GRACE, guarded_source=PLATFORM) is Verdict.DEAD


@pytest.mark.parametrize(
    ("marker", "guarded_source"),
    [
        (heartbeat(timedelta(minutes=10), source=STAGING), PLATFORM),  # same name, another server
        (heartbeat(timedelta(minutes=10), guarded=False), PLATFORM),  # it never held the guard
        (heartbeat(timedelta(minutes=10), source=BackupSource(database="platform")), PLATFORM),
        (heartbeat(timedelta(minutes=10)), None),  # the sweeping job holds no guard
    ],
)
def test_other_databases_dead_backups_wait_for_the_grace_period(
    marker: BackupHeartbeat, guarded_source: BackupSource | None
) -> None:
    recent = NOW - timedelta(minutes=10)
    assert judge(marker, recent, NOW, GRACE, guarded_source=guarded_source) is Verdict.RECENT
    assert judge(marker, NOW - timedelta(hours=7), NOW, GRACE, guarded_source) is Verdict.ABANDONED


def test_a_backup_of_an_earlier_release_keeps_the_last_activity_rule() -> None:
    assert judge(None, NOW - timedelta(hours=5), NOW, GRACE, guarded_source=PLATFORM) is Verdict.RECENT
    assert judge(None, NOW - timedelta(hours=7), NOW, GRACE, guarded_source=PLATFORM) is Verdict.ABANDONED


def test_an_unrecorded_server_is_no_database_in_particular() -> None:
    unrecorded = BackupSource(database="platform")
    assert not same_database(unrecorded, unrecorded)
    assert same_database(PLATFORM, BackupSource(system_identifier="7301", database="platform"))
