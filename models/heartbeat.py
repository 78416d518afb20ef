"""A running backup's heartbeat, and what the incomplete-backup sweep may do with a backup it finds.

Pure: no I/O. While a backup runs it keeps ``backups/<id>/running.json`` (:class:`BackupHeartbeat`)
and rewrites it every ``DBOPS_BACKUP_HEARTBEAT_SECONDS``. A marker is fresh while it was refreshed
less than :data:`STALE_AFTER_REFRESHES` intervals ago: a few missed rewrites (a store that answers
slowly, botocore's retries, clocks a little apart) never make a live backup look dead, and a
killed one is recognised within minutes.

Whether a backup is dead is known at once, without waiting for the marker to go stale, by the job
that holds the guard of the backup's database: every guarded backup of that database holds the same
guard for its whole run, so while another job holds it none is running.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from models.backup import BackupSource, backup_folder

RUNNING_NAME = "running.json"
#: A marker not refreshed for this many refresh intervals belongs to a backup that has stopped.
STALE_AFTER_REFRESHES = 5


def running_key(backup_id: str) -> str:
    """Where a running backup keeps its heartbeat: inside its own folder, so that everything that
    removes a backup (prune, the sweep) removes it too."""
    return f"{backup_folder(backup_id)}/{RUNNING_NAME}"


class BackupHeartbeat(BaseModel):
    """Who is writing a backup, and when it last said it still is."""

    source: BackupSource
    host: str
    pid: int
    guarded: bool = Field(description="Whether the backup holds its database's maintenance guard.")
    started_at: datetime
    refreshed_at: datetime
    refresh_seconds: float

    def stale_after(self) -> timedelta:
        return timedelta(seconds=self.refresh_seconds * STALE_AFTER_REFRESHES)


class Verdict(StrEnum):
    """What the sweep does with a backup that has no manifest."""

    RUNNING = "running"  # a fresh heartbeat: nothing of it is touched, however old its parts
    RECENT = "recent"  # written to within the grace period: left for now
    DEAD = "dead"  # its database's guard is held by the sweeping job: removed at once
    ABANDONED = "abandoned"  # nothing written to it within the grace period: removed


def judge(
    heartbeat: BackupHeartbeat | None,
    last_activity: datetime,
    now: datetime,
    grace: timedelta,
    guarded_source: BackupSource | None = None,
) -> Verdict:
    """The fate of an incomplete backup.

    *heartbeat* is its marker (None for a backup of an earlier release, which kept none),
    *last_activity* its newest write (objects, uploads in progress and the marker's own rewrite), and
    *guarded_source* the database whose guard the sweeping job holds, if any. A marker's freshness is
    judged by its newest rewrite as the writer recorded it or the store dated it, whichever is later.
    """
    if heartbeat is not None:
        if (
            guarded_source is not None
            and heartbeat.guarded
            and same_database(heartbeat.source, guarded_source)
        ):
            return Verdict.DEAD
        if now - max(heartbeat.refreshed_at, last_activity) < heartbeat.stale_after():
            return Verdict.RUNNING
    return Verdict.ABANDONED if last_activity < now - grace else Verdict.RECENT


def same_database(one: BackupSource, other: BackupSource) -> bool:
    """Whether two sources are one database: same server and name. An unrecorded server matches
    nothing, since the guard it would have held cannot be named."""
    return one.system_identifier is not None and (one.system_identifier, one.database) == (
        other.system_identifier,
        other.database,
    )
