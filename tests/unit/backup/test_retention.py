"""Retention is a pure function: property tests over arbitrary backup histories and policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from models.retention import Dated, RetentionPolicy, plan_retention

START = datetime(2024, 1, 1, tzinfo=UTC)

histories = st.lists(
    st.integers(min_value=0, max_value=3 * 365 * 24 * 60), min_size=0, max_size=80, unique=True
).map(lambda minutes: [Dated(f"b{minute:09d}", START + timedelta(minutes=minute)) for minute in minutes])
policies = st.builds(
    RetentionPolicy,
    keep_last=st.integers(0, 10),
    keep_daily=st.integers(0, 10),
    keep_weekly=st.integers(0, 8),
    keep_monthly=st.integers(0, 14),
)
zones = st.sampled_from(["UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata"])


@settings(max_examples=300)
@given(histories, policies, zones)
def test_the_newest_backup_is_always_kept(backups: list[Dated], policy: RetentionPolicy, zone: str) -> None:
    plan = plan_retention(backups, policy, zone)
    if backups:
        assert max(backups, key=lambda backup: backup.taken).backup_id in plan.keep


@settings(max_examples=300)
@given(histories, policies, zones)
def test_pruning_twice_removes_nothing_more(backups: list[Dated], policy: RetentionPolicy, zone: str) -> None:
    first = plan_retention(backups, policy, zone)
    survivors = [backup for backup in backups if backup.backup_id in first.keep]
    assert plan_retention(survivors, policy, zone).remove == []


@settings(max_examples=300)
@given(histories, policies, zones)
def test_only_given_backups_are_touched_and_each_is_decided_once(
    backups: list[Dated], policy: RetentionPolicy, zone: str
) -> None:
    plan = plan_retention(backups, policy, zone)
    given_ids = {backup.backup_id for backup in backups}
    assert set(plan.keep) | set(plan.remove) == given_ids
    assert not set(plan.keep) & set(plan.remove)


@settings(max_examples=200)
@given(histories, policies, zones)
def test_keep_last_keeps_the_most_recent(backups: list[Dated], policy: RetentionPolicy, zone: str) -> None:
    plan = plan_retention(backups, policy, zone)
    newest = sorted(backups, key=lambda backup: backup.taken, reverse=True)[: policy.keep_last]
    assert all("last" in plan.keep[backup.backup_id] for backup in newest)


def test_a_worked_example_in_berlin() -> None:
    # Nightly at 02:00 Berlin time for 60 days, plus a second run on the last day.
    backups = [
        Dated(f"d{day:02d}", datetime(2026, 9, 1, 0, 0, tzinfo=UTC) + timedelta(days=day))
        for day in range(60)
    ] + [Dated("d59-second", datetime(2026, 10, 30, 12, 0, tzinfo=UTC))]
    plan = plan_retention(
        backups, RetentionPolicy(keep_last=2, keep_daily=3, keep_weekly=2, keep_monthly=2), "Europe/Berlin"
    )
    assert plan.keep == {
        "d59-second": ["newest", "last", "daily", "weekly", "monthly"],
        "d59": ["last"],
        "d58": ["daily"],
        "d57": ["daily"],
        "d54": ["weekly"],  # Sunday 2026-10-25, the newest of the ISO week before
        "d29": ["monthly"],  # 2026-09-30, the newest of September
    }
    assert len(plan.remove) == 61 - 6


def test_an_empty_policy_still_keeps_the_newest() -> None:
    backups = [Dated("a", START), Dated("b", START + timedelta(days=1))]
    plan = plan_retention(
        backups, RetentionPolicy(keep_last=0, keep_daily=0, keep_weekly=0, keep_monthly=0), "UTC"
    )
    assert plan.keep == {"b": ["newest"]}
    assert plan.remove == ["a"]
