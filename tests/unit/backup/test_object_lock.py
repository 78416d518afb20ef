"""How long a backup is locked: until the retention policy could prune it at the earliest, or the
configured minimum. Pure functions, checked against ``plan_retention`` itself."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from models.retention import (
    LOCK_AHEAD_AT_WRITE,
    Dated,
    ObjectLock,
    ObjectLockMode,
    RetentionPolicy,
    earliest_prune,
    object_lock_until,
    plan_retention,
)
from tests.unit.backup.test_retention import policies

DEFAULT = RetentionPolicy()  # 7 last, 7 daily, 4 weekly, 12 monthly
BERLIN = "Europe/Berlin"


def berlin(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=ZoneInfo(BERLIN)).astimezone(UTC)


def test_a_weekday_backup_is_locked_until_the_daily_rule_can_let_it_go() -> None:
    # Wednesday 2026-11-25, 02:00 in Berlin: the seventh later day starts on 2 December.
    assert object_lock_until(berlin(2026, 11, 25, 2), DEFAULT, BERLIN) == berlin(2026, 12, 2)


def test_a_sunday_backup_is_its_weeks_newest_and_is_locked_for_the_weekly_rule() -> None:
    # Sunday 2026-11-29: its ISO week began on Monday 23 November; four weeks on is 21 December.
    assert object_lock_until(berlin(2026, 11, 29, 2), DEFAULT, BERLIN) == berlin(2026, 12, 21)
    no_weeks = DEFAULT.model_copy(update={"keep_weekly": 0})
    assert object_lock_until(berlin(2026, 11, 29, 2), no_weeks, BERLIN) == berlin(2026, 12, 6)


def test_a_backup_on_the_last_day_of_a_month_is_locked_for_the_monthly_rule() -> None:
    assert object_lock_until(berlin(2026, 11, 30, 2), DEFAULT, BERLIN) == berlin(2027, 11, 1)
    assert object_lock_until(berlin(2026, 12, 31, 23), DEFAULT, BERLIN) == berlin(2027, 12, 1)


def test_days_are_local_days() -> None:
    # 23:30 UTC on Saturday 2026-11-28 is already Sunday in Berlin, the last day of its week.
    taken = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)
    assert object_lock_until(taken, DEFAULT, BERLIN) == berlin(2026, 12, 21)
    assert object_lock_until(taken, DEFAULT, "UTC") == datetime(2026, 12, 5, tzinfo=UTC)


def test_across_the_end_of_summer_time_the_lock_ends_at_local_midnight() -> None:
    one_day = RetentionPolicy(keep_last=1, keep_daily=1, keep_weekly=0, keep_monthly=0)
    assert object_lock_until(berlin(2026, 10, 24, 2), one_day, BERLIN) == datetime(
        2026, 10, 24, 22, tzinfo=UTC
    )
    assert object_lock_until(berlin(2026, 10, 25, 2), one_day, BERLIN) == datetime(
        2026, 10, 25, 23, tzinfo=UTC
    )


def test_without_periodic_rules_the_newest_is_still_held_until_a_later_day() -> None:
    last_only = RetentionPolicy(keep_last=3, keep_daily=0, keep_weekly=0, keep_monthly=0)
    assert object_lock_until(berlin(2026, 11, 25, 2), last_only, BERLIN) == berlin(2026, 11, 26)


def test_a_later_minimum_wins_rounded_up_to_the_second() -> None:
    taken = datetime(2026, 11, 25, 1, 0, 0, 250_000, tzinfo=UTC)
    assert object_lock_until(taken, DEFAULT, "UTC", minimum_days=30) == datetime(
        2026, 12, 25, 1, 0, 1, tzinfo=UTC
    )
    assert object_lock_until(taken, DEFAULT, "UTC", minimum_days=3) == datetime(2026, 12, 2, tzinfo=UTC)


def test_a_lock_is_never_written_with_a_date_that_has_passed() -> None:
    now = datetime(2026, 11, 26, 0, 1, 30, 500, tzinfo=UTC)
    ended = ObjectLock(ObjectLockMode.COMPLIANCE, datetime(2026, 11, 26, tzinfo=UTC))
    assert ended.as_written_at(now) == ObjectLock(
        ObjectLockMode.COMPLIANCE, datetime(2026, 11, 26, 1, 1, 31, tzinfo=UTC)
    )
    assert ended.as_written_at(now).retain_until >= now + LOCK_AHEAD_AT_WRITE
    ahead = ObjectLock(ObjectLockMode.GOVERNANCE, datetime(2026, 12, 3, tzinfo=UTC))
    assert ahead.as_written_at(now) is ahead


moments = st.integers(min_value=0, max_value=4 * 365 * 24 * 60).map(
    lambda minutes: datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
)
zones = st.sampled_from(["UTC", BERLIN, "America/Los_Angeles", "Asia/Kolkata", "Australia/Lord_Howe"])


def later_day_starts(taken: datetime, zone: str, until: datetime) -> list[datetime]:
    """The start of every local day after *taken*'s, up to and including *until*."""
    tz = ZoneInfo(zone)
    day: date = taken.astimezone(tz).date() + timedelta(days=1)
    starts = []
    while (start := datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)) <= until:
        starts.append(start)
        day += timedelta(days=1)
    return starts


@settings(max_examples=200)
@given(moments, policies, zones, st.lists(st.floats(0, 1, exclude_max=True), max_size=40))
def test_no_backups_before_the_lock_ends_let_the_policy_remove_it(
    taken: datetime, policy: RetentionPolicy, zone: str, shares: list[float]
) -> None:
    """Whatever backups follow on later days, none of them before the lock ends lets the policy remove
    a day's newest backup: the lock is never longer than the policy's hold, and never in prune's way."""
    until = earliest_prune(taken, policy, zone)
    first_later = later_day_starts(taken, zone, until + timedelta(days=1))[0]
    assert first_later <= until
    later = sorted({first_later + (until - first_later) * share for share in shares} - {until})
    history = [Dated("b", taken), *(Dated(f"n{index:03d}", moment) for index, moment in enumerate(later))]
    assert "b" in plan_retention(history, policy, zone).keep


@settings(max_examples=200)
@given(moments, policies, zones)
def test_the_policy_can_remove_the_backup_the_moment_its_lock_ends(
    taken: datetime, policy: RetentionPolicy, zone: str
) -> None:
    """A backup every later day, and enough of them when the lock ends, let the policy remove it right
    then: the policy's hold can end no later than the lock, so the lock is never shorter than it."""
    until = earliest_prune(taken, policy, zone)
    later = later_day_starts(taken, zone, until) + [until] * policy.keep_last
    history = [Dated("b", taken), *(Dated(f"n{index:04d}", moment) for index, moment in enumerate(later))]
    assert "b" in plan_retention(history, policy, zone).remove
