"""Log archiving as data: which tables, where their batches live, and the run manifest.

Pure: no I/O. One store may hold several databases' archives (staging's beside production's, with
the same ids on the same days), so everything a database archives lives under its source, the
server's system identifier and the database's name, as backups record theirs:

- a batch is ``archive/<system id>/<database>/<table>/<yyyy>/<mm>/<dd>/<first>-<last>-<sha>.jsonl.gz``,
  dated by its oldest row (UTC) and named by its ids and the first 12 hex digits of its sha256, so
  its key depends only on its rows: a re-run after a crash meets the very object it wrote before,
  and rows that changed meanwhile get a key of their own instead of overwriting it;
- a run manifest is ``archive/<system id>/<database>/runs/<table>-<time>-<id>.json``.

The database's name is percent-encoded into one path segment. Earlier releases wrote
``archive/<table>/<yyyy>/<mm>/<dd>/<first>-<last>.jsonl.gz`` and ``archive/runs/...``, with no
source; those keys still parse, as batches and runs whose source is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from models.backup import BackupSource
from models.errors import ConfigurationError

ARCHIVE_FOLDER = "archive"
#: The runs of earlier releases, which recorded no source.
RUNS_FOLDER = f"{ARCHIVE_FOLDER}/runs"
#: Hex digits of a batch's sha256 in its key.
KEY_DIGEST_LENGTH = 12

#: The tables that are archived, with the column that dates their rows.
ARCHIVED_TABLES = {"audit_logs": "created_at", "analytics_events": "occurred_at"}


def source_folder(source: BackupSource) -> str:
    """Where one database's archive lives; its source must name its server."""
    if not source.system_identifier:
        raise ValueError(f"the archive of {source.database} needs its server's system identifier")
    return f"{ARCHIVE_FOLDER}/{source.system_identifier}/{quote(source.database, safe='')}"


def batch_key(
    source: BackupSource, table: str, oldest: datetime, first_id: int, last_id: int, sha256: str
) -> str:
    name = f"{first_id}-{last_id}-{sha256[:KEY_DIGEST_LENGTH]}.jsonl.gz"
    return f"{source_folder(source)}/{table}/{oldest:%Y/%m/%d}/{name}"


def runs_folder(source: BackupSource | None) -> str:
    """The folder of a source's run manifests; None: that of earlier releases."""
    return RUNS_FOLDER if source is None else f"{source_folder(source)}/runs"


def run_key(run_id: str, source: BackupSource | None = None) -> str:
    return f"{runs_folder(source)}/{run_id}.json"


@dataclass(frozen=True)
class BatchKey:
    """What a batch's key says: whose it is (None: written by an earlier release), of which table,
    and the day of its oldest row."""

    source: BackupSource | None
    table: str
    day: date


def parse_batch_key(key: str) -> BatchKey | None:
    """The parts of a batch key of either layout; None for anything else (run manifests, say)."""
    parts = key.split("/")
    if parts[0] != ARCHIVE_FOLDER or not parts[-1].endswith(".jsonl.gz"):
        return None
    if len(parts) == 6:
        source, rest = None, parts[1:5]
    elif len(parts) == 8 and parts[1].isdigit():
        source, rest = BackupSource(system_identifier=parts[1], database=unquote(parts[2])), parts[3:7]
    else:
        return None
    table, year, month, day = rest
    try:
        return BatchKey(source, table, date(int(year), int(month), int(day)))
    except ValueError:
        return None


def batch_day(key: str) -> date | None:
    """The day folder of a batch key; None for anything else."""
    parsed = parse_batch_key(key)
    return parsed.day if parsed else None


def choose_source(own: BackupSource, asked: str | None, held: list[BackupSource]) -> BackupSource:
    """Whose archive to read: *own* by default, else what ``--from-database [SYSTEM_ID/]NAME`` asks.

    A bare NAME means that database on this server if the store holds it, or on the one server the
    store holds it for; where several servers' databases share the name (staging's and production's
    ``platform``), the server has to be named too.
    """
    if asked is None:
        return own
    server, _, name = asked.rpartition("/")
    if server and not server.isdigit():
        server, name = "", asked
    if server:
        wanted = BackupSource(system_identifier=server, database=name)
        if wanted in held:
            return wanted
        candidates = []
    else:
        candidates = [source for source in held if source.database == name]
        for source in candidates:
            if source.system_identifier == own.system_identifier:
                return source
        if len(candidates) == 1:
            return candidates[0]
    listed = ", ".join(_named(source) for source in held) or "nothing"
    if len(candidates) > 1:
        raise ConfigurationError(
            f"the store holds archives of {len(candidates)} databases named {name}, none on this server",
            detail=f"it holds {listed}",
            hint="pass --from-database SYSTEM_ID/NAME to say which",
        )
    raise ConfigurationError(
        f"the store holds no archive of {asked}", detail=f"it holds {listed}", hint="choose one of those"
    )


def _named(source: BackupSource) -> str:
    return f"{source.system_identifier}/{source.database}"


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
    unfinished run is resumed, with its cut-off, by the next run of the same source and table."""

    run_id: str
    table: str
    source: BackupSource | None = Field(default=None, description="None in runs of earlier releases.")
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
    source: BackupSource | None = Field(default=None, description="The database archived; None in a dry run.")
