"""Grandfather-father-son retention: which backups to keep, as a pure function of their times.

The semantics follow restic's ``forget``: walking from the newest backup back, ``keep_last`` keeps the
N most recent; ``keep_daily`` keeps the newest backup of each of the D most recent days that have one;
weekly (ISO weeks) and monthly likewise. Periods are taken in the configured time zone. A backup kept
by any rule is kept, and the newest backup is always kept, whatever the policy says.

Object lock (S3 Object Lock, ``DBOPS_BACKUP_OBJECT_LOCK``) makes a backup's objects immutable until a
date: :func:`object_lock_until` derives that date from the same policy, so the lock protects a backup
for as long as the policy could still want it, and no longer than it must.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field


class RetentionPolicy(BaseModel):
    keep_last: int = Field(default=7, ge=0)
    keep_daily: int = Field(default=7, ge=0)
    keep_weekly: int = Field(default=4, ge=0)
    keep_monthly: int = Field(default=12, ge=0)


@dataclass(frozen=True)
class Dated:
    backup_id: str
    taken: datetime


class RetentionPlan(BaseModel):
    keep: dict[str, list[str]] = Field(
        default_factory=dict, description="Backup id -> the rules that keep it."
    )
    remove: list[str] = Field(default_factory=list)
    locked: dict[str, datetime] = Field(
        default_factory=dict,
        description="Backup id -> when its object lock ends: the policy would remove it, but the store "
        "keeps it immutable until then. Neither kept by a rule nor removed, and never a failure.",
    )

    def lock_notes(self) -> dict[str, str]:
        """Each locked backup's report line, as the CLI, the flow and the log all word it."""
        return {
            backup_id: f"retained by object lock until {until.astimezone(UTC).isoformat(timespec='seconds')}"
            for backup_id, until in sorted(self.locked.items(), reverse=True)
        }


class ObjectLockMode(StrEnum):
    """S3 Object Lock's two modes. In governance mode a user with ``s3:BypassGovernanceRetention`` can
    still delete or shorten a lock (dbops never does); in compliance mode nobody can, the account's root
    user included, until the date passes."""

    GOVERNANCE = "governance"
    COMPLIANCE = "compliance"


#: How far ahead a lock must end when it is set: S3 refuses a retain-until date that has passed, and
#: the store's clock may run a little ahead of ours.
LOCK_AHEAD_AT_WRITE = timedelta(hours=1)


@dataclass(frozen=True)
class ObjectLock:
    """The lock one backup's immutable objects (dump and manifest) are written with."""

    mode: ObjectLockMode
    retain_until: datetime

    def as_written_at(self, now: datetime) -> ObjectLock:
        """This lock as a store takes it at *now*: ending at least :data:`LOCK_AHEAD_AT_WRITE` later.

        Only a policy that keeps a backup less than a day, with a dump running past midnight, gets
        here with a date that has passed; the backup is then locked briefly rather than not at all.
        """
        floor = now + LOCK_AHEAD_AT_WRITE
        if self.retain_until >= floor:
            return self
        return ObjectLock(self.mode, _whole_second_up(floor))


def plan_retention(backups: Sequence[Dated], policy: RetentionPolicy, timezone: str) -> RetentionPlan:
    zone = ZoneInfo(timezone)
    newest_first = sorted(backups, key=lambda backup: (backup.taken, backup.backup_id), reverse=True)
    keep: dict[str, list[str]] = {}

    def mark(backup: Dated, rule: str) -> None:
        keep.setdefault(backup.backup_id, []).append(rule)

    if newest_first:
        mark(newest_first[0], "newest")
    for backup in newest_first[: policy.keep_last]:
        mark(backup, "last")
    periods: list[tuple[str, int, Callable[[datetime], Hashable]]] = [
        ("daily", policy.keep_daily, lambda moment: moment.date()),
        ("weekly", policy.keep_weekly, lambda moment: moment.isocalendar()[:2]),
        ("monthly", policy.keep_monthly, lambda moment: (moment.year, moment.month)),
    ]
    for rule, count, period_of in periods:
        seen: set[Hashable] = set()
        for backup in newest_first:
            if len(seen) >= count:
                break
            period = period_of(backup.taken.astimezone(zone))
            if period not in seen:
                seen.add(period)
                mark(backup, rule)
    remove = [backup.backup_id for backup in newest_first if backup.backup_id not in keep]
    return RetentionPlan(keep=keep, remove=remove)


def earliest_prune(taken: datetime, policy: RetentionPolicy, timezone: str) -> datetime:
    """The earliest moment *policy* could remove a backup taken at *taken*, if it stays the newest backup
    of its local day (as the nightly one does).

    Without that assumption there is no such moment: a second backup later the same day takes over
    the day's, week's and month's places, and ``keep_last`` more backups can follow within minutes,
    so the policy could remove any backup almost at once. With it, every backup newer than this one
    lies on a later day, and the policy's rules hold it until the earliest moment enough of them can
    exist:

    - the newest backup is kept while it is the newest, and ``keep_last`` keeps it until N newer
      backups exist: at least until the next local day starts;
    - ``keep_daily`` D keeps it until D later days have a backup: until day + D starts;
    - ``keep_weekly`` W, if its day is the last of its ISO week (a Sunday), so that it is also its
      week's newest: until the Monday W weeks after its week's starts;
    - ``keep_monthly`` M, if its day is the last of its month: until the first of the month M months
      on.

    A backup that does not stay its day's newest (a manual backup before the nightly one) may be
    wanted gone earlier: pruning then finds it still locked, reports it as retained by object lock,
    and removes it at a later run. A lock that is too long costs storage for a while; one that is
    too short would leave a backup the policy still keeps open to deletion.
    """
    zone = ZoneInfo(timezone)
    day = taken.astimezone(zone).date()

    def starts(local_day: date) -> datetime:
        return datetime.combine(local_day, time(), tzinfo=zone).astimezone(UTC)

    moments = [starts(day + timedelta(days=1))]
    if policy.keep_daily:
        moments.append(starts(day + timedelta(days=policy.keep_daily)))
    if policy.keep_weekly and day.isoweekday() == 7:
        monday = day - timedelta(days=6)
        moments.append(starts(monday + timedelta(weeks=policy.keep_weekly)))
    if policy.keep_monthly and (day + timedelta(days=1)).day == 1:
        months = day.year * 12 + day.month - 1 + policy.keep_monthly
        moments.append(starts(date(months // 12, months % 12 + 1, 1)))
    return max(moments)


def object_lock_until(
    taken: datetime, policy: RetentionPolicy, timezone: str, minimum_days: int = 0
) -> datetime:
    """When a backup taken at *taken* may be deleted at the earliest: :func:`earliest_prune`, or
    *minimum_days* after it was taken if that is later, rounded up to a whole second (stores keep
    retention dates to the second, and rounding down would end the lock early)."""
    return _whole_second_up(
        max(earliest_prune(taken, policy, timezone), taken.astimezone(UTC) + timedelta(days=minimum_days))
    )


def _whole_second_up(moment: datetime) -> datetime:
    return moment.replace(microsecond=0) + timedelta(seconds=1) if moment.microsecond else moment
