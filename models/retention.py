"""Grandfather-father-son retention: which backups to keep, as a pure function of their times.

The semantics follow restic's ``forget``: walking from the newest backup back, ``keep_last`` keeps the
N most recent; ``keep_daily`` keeps the newest backup of each of the D most recent days that have one;
weekly (ISO weeks) and monthly likewise. Periods are taken in the configured time zone. A backup kept
by any rule is kept, and the newest backup is always kept, whatever the policy says.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
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
