"""Bring archived rows back for an audit: into their table (ids already there are skipped) or into a
staging table beside it.

The request is a span of days, and what comes back is exactly the rows whose time lies in it. A
batch is filed under the day of its oldest row but may span months (ids are not in time order), so
batches are chosen by their recorded time range (run manifests, else object metadata) overlapping
the span, and rows by their own time. Each object's sha256 is checked against the one stored with it
before a row is read, and each object is imported in one transaction, so an interrupted import can
simply be run again.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from datetime import UTC, date, datetime, time, timedelta

from psycopg import sql
from pydantic import BaseModel, Field
from sqlalchemy.engine import URL

from models.errors import ArchiveError, ConfigurationError
from models.log_archive import ARCHIVE_FOLDER, RUNS_FOLDER, ArchiveRun, batch_day, overlaps
from models.settings import Settings
from tasks.log_archive.archiving import JSON_LINES, check_table
from tasks.postgres.driver import connect
from tasks.storage import ObjectStore

_log = logging.getLogger(__name__)


class ImportOutcome(BaseModel):
    table: str
    into: str
    objects: int
    rows_read: int = Field(description="Rows of the requested days found in the objects read.")
    rows_inserted: int

    @property
    def rows_skipped(self) -> int:
        return self.rows_read - self.rows_inserted


def import_archive(
    url: URL,
    settings: Settings,
    store: ObjectStore,
    table: str,
    first_day: date,
    last_day: date,
    *,
    into: str | None = None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> ImportOutcome:
    """Import the archived rows of *table* dated *first_day* to *last_day* (inclusive, UTC)."""
    log = logger or _log
    column = check_table(table)
    if first_day > last_day:
        raise ConfigurationError(f"--from {first_day} is after --to {last_day}", hint="swap the two dates")
    start = datetime.combine(first_day, time(0), tzinfo=UTC)
    end = datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=UTC)
    keys = _batches_overlapping(store, table, start, end)
    target = into or table
    rows_read = rows_inserted = 0
    with connect(
        url, purpose="archive import", connect_timeout=settings.connect_timeout_seconds
    ) as connection:
        if into is not None:
            connection.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS INCLUDING INDEXES)"
                ).format(sql.Identifier(into), sql.Identifier(table))
            )
            connection.commit()
        for key in keys:
            lines = _read_verified(store, key)
            with connection.transaction():
                connection.execute("CREATE TEMPORARY TABLE incoming (document jsonb) ON COMMIT DROP")
                with (
                    connection.cursor() as cursor,
                    cursor.copy(sql.SQL("COPY incoming FROM STDIN WITH ({})").format(JSON_LINES)) as copy,
                ):
                    copy.write(lines)
                connection.execute(
                    sql.SQL(
                        "DELETE FROM incoming WHERE NOT ((document->>{column})::timestamptz >= %(start)s "
                        "AND (document->>{column})::timestamptz < %(end)s)"
                    ).format(column=sql.Literal(column)),
                    {"start": start, "end": end},
                )
                counted = connection.execute("SELECT count(*) FROM incoming").fetchone()
                read = int(counted[0]) if counted else 0
                inserted = connection.execute(
                    sql.SQL(
                        "INSERT INTO {target} SELECT (jsonb_populate_record(NULL::{target}, document)).* "
                        "FROM incoming ON CONFLICT (id) DO NOTHING"
                    ).format(target=sql.Identifier(target))
                ).rowcount
            rows_read += read
            rows_inserted += inserted
            log.info("%s: %d rows, %d inserted into %s", key, read, inserted, target)
    return ImportOutcome(
        table=table, into=target, objects=len(keys), rows_read=rows_read, rows_inserted=rows_inserted
    )


def _batches_overlapping(store: ObjectStore, table: str, start: datetime, end: datetime) -> list[str]:
    """The keys of *table*'s batches that may hold rows in ``[start, end)``, by their time range.

    One read per run manifest gives the range of every batch a run recorded; a batch no manifest
    lists (its run was killed between the commit and the manifest update) has the range in its
    metadata, and a batch of an early release with neither is judged by its folder day.
    """
    ranges: dict[str, tuple[datetime, datetime]] = {}
    for stored in store.list_objects(RUNS_FOLDER):
        if stored.key.startswith(f"{RUNS_FOLDER}/{table}-"):
            run = ArchiveRun.model_validate_json(store.read_bytes(stored.key))
            ranges |= {batch.key: (batch.oldest, batch.newest) for batch in run.batches}
    chosen = []
    for stored in store.list_objects(f"{ARCHIVE_FOLDER}/{table}"):
        day = batch_day(stored.key)
        if day is None:
            continue
        oldest, newest = ranges.get(stored.key) or _metadata_range(store, stored.key)
        if overlaps(oldest, newest, day, start, end):
            chosen.append(stored.key)
    return sorted(chosen)


def _metadata_range(store: ObjectStore, key: str) -> tuple[datetime | None, datetime | None]:
    metadata = store.read_metadata(key)
    if "oldest" not in metadata or "newest" not in metadata:
        return None, None
    return datetime.fromisoformat(metadata["oldest"]), datetime.fromisoformat(metadata["newest"])


def _read_verified(store: ObjectStore, key: str) -> bytes:
    data = store.read_bytes(key)
    expected = store.read_metadata(key).get("sha256")
    actual = hashlib.sha256(data).hexdigest()
    if expected != actual:
        raise ArchiveError(
            f"archived object {key} does not match the sha256 stored with it",
            detail=f"read {actual[:16]}..., expected {str(expected)[:16]}...",
            hint="the object is damaged; restore it from the store's versioning or replication",
        )
    return gzip.decompress(data)
