"""Log archiving as data: which tables, where their batches live, and the run manifest.

Pure: no I/O. A batch is ``archive/<table>/<yyyy>/<mm>/<dd>/<first_id>-<last_id>.jsonl.gz``, dated
by its oldest row (UTC), so its key depends only on its rows: a re-run after a crash writes the very
same object again instead of a second copy.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

ARCHIVE_FOLDER = "archive"
RUNS_FOLDER = f"{ARCHIVE_FOLDER}/runs"

#: The tables that are archived, with the column that dates their rows.
ARCHIVED_TABLES = {"audit_logs": "created_at", "analytics_events": "occurred_at"}


def batch_key(table: str, oldest: datetime, first_id: int, last_id: int) -> str:
    return f"{ARCHIVE_FOLDER}/{table}/{oldest:%Y/%m/%d}/{first_id}-{last_id}.jsonl.gz"


def batch_day(key: str) -> date | None:
    """The day folder of a batch key; None for anything else."""
    parts = key.split("/")
    if len(parts) != 6 or parts[0] != ARCHIVE_FOLDER or not parts[5].endswith(".jsonl.gz"):
        return None
    try:
        return date(int(parts[2]), int(parts[3]), int(parts[4]))
    except ValueError:
        return None


def overlaps(
    oldest: datetime | None, newest: datetime | None, folder_day: date, start: datetime, end: datetime
) -> bool:
    """Whether a batch may hold rows in ``[start, end)``.

    A batch's time range comes from its run manifest or its metadata; where neither has one (a batch
    of an early release whose run manifest is gone), only its folder day, the day of its oldest row,
    is known, and the batch is read unless that day is past *end*.
    """
    if oldest is None or newest is None:
        return datetime.combine(folder_day, time(0), tzinfo=UTC) < end
    return oldest < end and newest >= start


def run_key(run_id: str) -> str:
    return f"{RUNS_FOLDER}/{run_id}.json"


def cutoff(now: datetime, timezone: str, older_than_days: int) -> datetime:
    """The start of the local day *older_than_days* before today, in *timezone*.

    Day-aligned, so every run on the same local day archives up to the same instant, and recorded
    with its offset, so the run manifest says exactly where the line was drawn.
    """
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    return datetime.combine(today - timedelta(days=older_than_days), time(0), tzinfo=zone)


class ArchiveBatch(BaseModel):
    key: str
    first_id: int
    last_id: int
    rows: int
    bytes: int
    sha256: str
    oldest: datetime
    newest: datetime


class ArchiveRun(BaseModel):
    """Written when a run starts, updated after each batch, and marked complete at the end; an
    unfinished run is resumed, with its cut-off, by the next one."""

    run_id: str
    table: str
    timezone: str
    older_than_days: int
    cutoff: datetime
    started_at: datetime
    finished_at: datetime | None = None
    complete: bool = False
    batches: list[ArchiveBatch] = Field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(batch.rows for batch in self.batches)


class ArchiveOutcome(BaseModel):
    """One table's archiving, as the CLI prints it and the flow publishes it."""

    table: str
    cutoff: datetime
    dry_run: bool
    rows_archived: int
    batches: int
    bytes_stored: int
    seconds: float
    rows_per_second: float
    resumed_run: str | None = None
    table_bytes_before: int
    table_bytes_after: int
    run_ids: list[str] = Field(default_factory=list)
