"""Bring archived rows back for an audit: into their table (ids already there are skipped) or into a
staging table beside it.

The request is a span of days, and what comes back is exactly the rows whose time lies in it. A
batch is filed under the day of its oldest row but may span months (ids are not in time order), so
batches are chosen by their recorded time range (run manifests, else object metadata) overlapping
the span, and rows by their own time. Each object is imported in one transaction, so an interrupted
import can simply be run again.

Only one database's archive is read: this database's own by default (its server's system identifier
and its name), another one's only when asked by name, since a store may hold several databases' rows
with the same ids on the same days. Batches of earlier releases, which recorded no source, are read
in every import, and counted apart. Each object's sha256 is checked against the one its run
manifest recorded before a row is read: metadata travels with the object, so whoever rewrites one
rewrites both, while the manifest is another object. Only an object no manifest lists (its run was
killed between the commit and the manifest's update) is checked against its own metadata, and
counted apart.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from datetime import UTC, date, datetime, time, timedelta

from psycopg import sql
from pydantic import BaseModel, Field
from sqlalchemy.engine import URL

from models.backup import BackupSource
from models.errors import ArchiveError, ConfigurationError
from models.log_archive import (
    ARCHIVE_FOLDER,
    ArchiveRun,
    choose_source,
    overlaps,
    parse_batch_key,
    runs_folder,
    source_folder,
)
from models.settings import Settings
from tasks.log_archive.archiving import JSON_LINES, archive_source, check_table
from tasks.postgres.driver import connect
from tasks.storage import ObjectStore

_log = logging.getLogger(__name__)


class ImportOutcome(BaseModel):
    table: str
    into: str
    source: BackupSource = Field(description="The database whose archive was read.")
    objects: int
    earlier_release_objects: int = Field(
        default=0, description="Objects of earlier releases, which recorded no source (read by every import)."
    )
    unlisted_objects: int = Field(
        default=0, description="Objects no run manifest lists, checked against their own metadata."
    )
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
    from_database: str | None = None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> ImportOutcome:
    """Import the archived rows of *table* dated *first_day* to *last_day* (inclusive, UTC), from this
    database's archive, or from that of *from_database* (``NAME`` or ``SYSTEM_ID/NAME``)."""
    log = logger or _log
    column = check_table(table)
    if first_day > last_day:
        raise ConfigurationError(f"--from {first_day} is after --to {last_day}", hint="swap the two dates")
    start = datetime.combine(first_day, time(0), tzinfo=UTC)
    end = datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=UTC)
    own = archive_source(url, settings)
    source = choose_source(own, from_database, archived_sources(store)) if from_database else own
    batches = _batches_overlapping(store, source, table, start, end)
    if not batches and from_database is None:
        others = [held for held in archived_sources(store) if held != own]
        if others:
            log.warning(
                "the archive of %s holds no %s of those days; the store also holds the archives of %s "
                "(--from-database SYSTEM_ID/NAME reads one of them)",
                own.describe(),
                table,
                ", ".join(f"{held.system_identifier}/{held.database}" for held in others),
            )
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
        for key, recorded in batches.items():
            lines = _read_verified(store, key, recorded, log)
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
        table=table,
        into=target,
        source=source,
        objects=len(batches),
        earlier_release_objects=sum(1 for key in batches if not key.startswith(source_folder(source) + "/")),
        unlisted_objects=sum(1 for recorded in batches.values() if not recorded),
        rows_read=rows_read,
        rows_inserted=rows_inserted,
    )


def archived_sources(store: ObjectStore) -> list[BackupSource]:
    """Every database whose batches the store holds, in the order of their keys."""
    found: list[BackupSource] = []
    for stored in store.list_objects(ARCHIVE_FOLDER + "/"):
        parsed = parse_batch_key(stored.key)
        if parsed is not None and parsed.source is not None and parsed.source not in found:
            found.append(parsed.source)
    return found


def _batches_overlapping(
    store: ObjectStore, source: BackupSource, table: str, start: datetime, end: datetime
) -> dict[str, set[str]]:
    """The keys of the batches of *source*'s *table* (and of earlier releases') that may hold rows in
    ``[start, end)``, each with the sha256 values run manifests recorded for it (none: unlisted).

    One read per run manifest gives the range and sha256 of every batch a run recorded; a batch no
    manifest lists has the range in its metadata, and a batch of an early release with neither is
    judged by its folder day. The folders are listed with a closing slash: an S3 prefix
    ``.../platform`` would also take in ``.../platform2``.
    """
    ranges: dict[str, tuple[datetime, datetime]] = {}
    recorded: dict[str, set[str]] = {}
    for owner in (source, None):
        folder = runs_folder(owner)
        for stored in store.list_objects(folder + "/"):
            if stored.key.startswith(f"{folder}/{table}-"):
                run = ArchiveRun.model_validate_json(store.read_bytes(stored.key))
                for batch in run.batches:
                    ranges[batch.key] = (batch.oldest, batch.newest)
                    recorded.setdefault(batch.key, set()).add(batch.sha256)
    chosen: dict[str, set[str]] = {}
    for folder in (f"{source_folder(source)}/{table}/", f"{ARCHIVE_FOLDER}/{table}/"):
        for stored in store.list_objects(folder):
            parsed = parse_batch_key(stored.key)
            if parsed is None or parsed.table != table or parsed.source not in (source, None):
                continue
            oldest, newest = ranges.get(stored.key) or _metadata_range(store, stored.key)
            if overlaps(oldest, newest, parsed.day, start, end):
                chosen[stored.key] = recorded.get(stored.key, set())
    return dict(sorted(chosen.items()))


def _metadata_range(store: ObjectStore, key: str) -> tuple[datetime | None, datetime | None]:
    metadata = store.read_metadata(key)
    if "oldest" not in metadata or "newest" not in metadata:
        return None, None
    return datetime.fromisoformat(metadata["oldest"]), datetime.fromisoformat(metadata["newest"])


def _read_verified(
    store: ObjectStore,
    key: str,
    recorded: set[str],
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> bytes:
    """The object's rows, once its sha256 matches its run manifest's (or, unlisted, its metadata's)."""
    data = store.read_bytes(key)
    actual = hashlib.sha256(data).hexdigest()
    if recorded:
        if actual not in recorded:
            raise ArchiveError(
                f"archived object {key} does not match the sha256 its run manifest recorded; "
                "nothing of it was imported",
                detail=f"read {actual[:16]}..., recorded {', '.join(sorted(v[:16] for v in recorded))}...",
                hint="the object was changed after it was archived; restore it from the store's "
                "versioning or replication",
            )
        return gzip.decompress(data)
    expected = store.read_metadata(key).get("sha256")
    log.warning("%s is in no run manifest (its run was killed before recording it): checked by metadata", key)
    if expected != actual:
        raise ArchiveError(
            f"archived object {key} does not match the sha256 stored with it; nothing of it was imported",
            detail=f"read {actual[:16]}..., expected {str(expected)[:16]}...",
            hint="the object is damaged; restore it from the store's versioning or replication",
        )
    return gzip.decompress(data)
