"""Archive old audit logs and analytics events to the object store, and delete them only once the
store has proven it holds them.

Each batch is one transaction of its own: the rows are deleted with ``DELETE ... RETURNING`` and
streamed out by COPY as JSON Lines, gzip-compressed, stored, and read back; the transaction commits
only when the stored object's size and sha256 match what was written, so until then the delete is
invisible and a failure anywhere rolls back that batch alone. The connection is in autocommit mode,
so each ``transaction()`` block really commits: on a connection with a transaction already open it
would only be a savepoint, and every batch would commit together at the end of the run.

Rows are taken in id order below a day-aligned cut-off, so rows the application inserts meanwhile
are never touched.

Everything is filed under the database's source (its server's system identifier and its name), and
no batch object is ever overwritten: another database archiving the same ids on the same days (a
staging copy of production, into the same store) writes beside it, and the only object a batch may
meet at its key is the one an earlier, crashed attempt at the same rows stored, byte for byte.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from models.backup import BackupSource
from models.errors import ArchiveError, ArchiveVerificationError, ConfigurationError, ObjectExistsError
from models.log_archive import (
    ARCHIVED_TABLES,
    ArchiveBatch,
    ArchiveOutcome,
    ArchiveRun,
    batch_key,
    cutoff,
    run_key,
    runs_folder,
)
from models.settings import Settings
from tasks.backup.source import database_source
from tasks.log_archive.gzip_thread import BackgroundGzip
from tasks.postgres.copy_binary import BinaryCopyReader
from tasks.postgres.driver import connect
from tasks.postgres.guard import maintenance_guard
from tasks.storage import ObjectStore

_log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

#: CSV with a delimiter and quote no JSON text can contain: COPY then reads (and writes) each JSON
#: value as is, one per line, where the text format would escape its backslashes.
JSON_LINES = sql.SQL("FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02'")
#: Rows per value the server sends: the lines of a thousand rows travel as one binary COPY value.
LINES_PER_MESSAGE = 1000
NEXT_BATCH = """
    SELECT min(id), max(id), count(*), min({column}), max({column}) FROM (
        SELECT id, {column} FROM {table} WHERE {column} < %(cutoff)s AND id > %(after)s
        ORDER BY id LIMIT %(limit)s
    ) AS batch
"""
#: Deleted and streamed out in one statement, so what is archived is exactly what is deleted.
#: row_to_json writes every column in table order, JSON columns as JSON and timestamps in ISO 8601.
TAKE_BATCH = """
    COPY (
        WITH taken AS (
            DELETE FROM {table} WHERE id BETWEEN %(first)s AND %(last)s AND {column} < %(cutoff)s RETURNING *
        )
        SELECT string_agg(row_to_json(taken)::text || E'\\n', '' ORDER BY id) FROM taken
        GROUP BY id / {lines} ORDER BY id / {lines}
    ) TO STDOUT WITH (FORMAT binary)
"""


def check_table(table: str) -> str:
    if table not in ARCHIVED_TABLES:
        raise ConfigurationError(
            f"{table!r} is not an archived table", hint=f"choose one of {', '.join(ARCHIVED_TABLES)}"
        )
    return ARCHIVED_TABLES[table]


def archive_table(
    url: URL,
    settings: Settings,
    store: ObjectStore,
    table: str,
    *,
    older_than_days: int | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    logger: Logger | None = None,
) -> ArchiveOutcome:
    """Archive *table*'s rows older than the cut-off; first finish a run of this database's that a
    crash left unfinished (never another database's, whose cut-off is not this one's to apply)."""
    log = logger or _log
    column = check_table(table)
    days = older_than_days or settings.archive_retention_days(table)
    line = cutoff(now or datetime.now(UTC), settings.timezone, days)
    started = time.monotonic()
    size_before = _table_bytes(url, settings, table)
    if dry_run:
        rows = _rows_older_than(url, settings, table, column, line)
        log.info("dry run: %d rows of %s are older than %s", rows, table, line.isoformat())
        return _outcome(table, line, True, rows, [], started, size_before, size_before, None)
    with maintenance_guard(url, settings, url.database or "", f"archive-logs of {table}", logger=log):
        source = archive_source(url, settings)
        runs: list[ArchiveRun] = []
        batches: list[ArchiveBatch] = []  # this call's own; a resumed run's earlier batches were counted then
        unfinished = _unfinished_run(store, source, table)
        if unfinished is not None:
            log.warning(
                "resuming run %s of %s, cut off at %s",
                unfinished.run_id,
                table,
                unfinished.cutoff.isoformat(),
            )
            done_before = len(unfinished.batches)
            runs.append(_run_batches(url, settings, store, unfinished, column, log))
            batches += unfinished.batches[done_before:]
        fresh = ArchiveRun(
            run_id=f"{table}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}",
            table=table,
            source=source,
            timezone=settings.timezone,
            older_than_days=days,
            cutoff=line,
            started_at=datetime.now(UTC),
        )
        runs.append(_run_batches(url, settings, store, fresh, column, log))
        batches += fresh.batches
    _vacuum(url, settings, table)
    size_after = _table_bytes(url, settings, table)
    resumed = unfinished.run_id if unfinished is not None else None
    return _outcome(
        table,
        line,
        False,
        sum(b.rows for b in batches),
        batches,
        started,
        size_before,
        size_after,
        resumed,
        [run.run_id for run in runs],
        source,
    )


def archive_source(url: URL, settings: Settings) -> BackupSource:
    """The database *url* reaches, named as a backup names its source: what its archive is filed under."""
    source = database_source(url, settings)
    if not source.system_identifier:
        raise ArchiveError(
            f"could not read the system identifier of the server of {source.database}; nothing was archived",
            hint="check that the server is up and that the role may call pg_control_system()",
        )
    return source


def _run_batches(
    url: URL, settings: Settings, store: ObjectStore, run: ArchiveRun, column: str, log: Logger
) -> ArchiveRun:
    store.put_bytes(run_key(run.run_id, run.source), run.model_dump_json(indent=2).encode())
    after = max((batch.last_id for batch in run.batches), default=0)
    with connect(
        url,
        purpose="archive",
        autocommit=True,
        connect_timeout=settings.connect_timeout_seconds,
        options={"TimeZone": "UTC"},
    ) as connection:
        while True:
            batch = _archive_batch(connection, store, settings, run, column, after)
            if batch is None:
                break
            run.batches.append(batch)
            after = batch.last_id
            store.put_bytes(run_key(run.run_id, run.source), run.model_dump_json(indent=2).encode())
            log.info(
                "%s: archived ids %d-%d (%d rows) to %s",
                run.table,
                batch.first_id,
                batch.last_id,
                batch.rows,
                batch.key,
            )
    run.complete, run.finished_at = True, datetime.now(UTC)
    store.put_bytes(run_key(run.run_id, run.source), run.model_dump_json(indent=2).encode())
    return run


def _archive_batch(
    connection: psycopg.Connection[tuple[Any, ...]],
    store: ObjectStore,
    settings: Settings,
    run: ArchiveRun,
    column: str,
    after: int,
) -> ArchiveBatch | None:
    """One batch in one transaction: commit (the delete) only after the store proved it has the rows."""
    names = {"table": sql.Identifier(run.table), "column": sql.Identifier(column)}
    with connection.transaction():
        bounds = connection.execute(
            sql.SQL(NEXT_BATCH).format(**names),
            {"cutoff": run.cutoff, "after": after, "limit": settings.archive_batch_size},
        ).fetchone()
        if bounds is None or not bounds[2]:
            return None
        first, last, counted, oldest, newest = (
            int(bounds[0]),
            int(bounds[1]),
            int(bounds[2]),
            bounds[3],
            bounds[4],
        )
        taken = 0
        reader = BinaryCopyReader()
        with connection.cursor() as cursor, BackgroundGzip(settings.archive_compression_level) as compressor:
            with cursor.copy(
                sql.SQL(TAKE_BATCH).format(**names, lines=sql.Literal(LINES_PER_MESSAGE)),
                {"first": first, "last": last, "cutoff": run.cutoff},
            ) as copy:
                for chunk in copy:
                    for lines in reader.feed(chunk):
                        taken += lines.count(b"\n")  # JSON text never holds a raw newline
                        compressor.write(lines)
            data = compressor.finish()
        if not reader.finished:
            raise ArchiveError(
                f"{run.table}: the COPY of ids {first}-{last} ended early; nothing was deleted"
            )
        if taken != counted:
            raise ArchiveError(
                f"{run.table}: ids {first}-{last} held {counted} rows older than the cut-off, "
                f"but {taken} were taken; nothing was deleted",
                hint="rows were changed while archiving; run again",
            )
        digest = hashlib.sha256(data).hexdigest()
        assert run.source is not None, "only a run of this release's, which names its source, archives"
        key = batch_key(run.source, run.table, oldest.astimezone(UTC), first, last, digest)
        _store_new(
            store,
            key,
            data,
            {
                "sha256": digest,
                "rows": str(taken),
                "first-id": str(first),
                "last-id": str(last),
                "oldest": oldest.astimezone(UTC).isoformat(),
                "newest": newest.astimezone(UTC).isoformat(),
            },
        )
        _verify(store, key, len(data), digest)
    return ArchiveBatch(
        key=key,
        first_id=first,
        last_id=last,
        rows=taken,
        bytes=len(data),
        sha256=digest,
        oldest=oldest,
        newest=newest,
    )


def _store_new(store: ObjectStore, key: str, data: bytes, metadata: dict[str, str]) -> None:
    """Store the batch without overwriting anything. An object already at its key is the same rows
    stored by an attempt that crashed before its commit, and is kept; one with other bytes under a
    key named by their sha256 means the store was tampered with, and nothing is deleted."""
    try:
        store.put_new(key, data, metadata)
    except ObjectExistsError:
        there = hashlib.sha256(store.read_bytes(key)).hexdigest()
        if there != metadata["sha256"]:
            raise ArchiveVerificationError(
                f"{key} is already in the store with other contents (sha256 {there[:16]}...); "
                "it was left as it was, and the batch's delete was rolled back",
                detail=store.describe(),
                hint="find out who wrote that object; the next run tries these rows again",
            ) from None


def _verify(store: ObjectStore, key: str, size: int, digest: str) -> None:
    """Read the object back: only an object the store returns whole lets the delete commit."""
    stored = store.read_bytes(key)
    stored_digest = hashlib.sha256(stored).hexdigest()
    if len(stored) != size or stored_digest != digest:
        raise ArchiveVerificationError(
            f"the store returned {len(stored)} bytes with sha256 {stored_digest[:16]}... for {key}, "
            f"not the {size} bytes with sha256 {digest[:16]}... written",
            detail=f"{store.describe()}; the batch's delete was rolled back",
            hint="check the object store; the next run archives the same rows again",
        )


def _unfinished_run(store: ObjectStore, source: BackupSource, table: str) -> ArchiveRun | None:
    """The newest run of *source*'s *table*, if a crash left it unfinished (the runs of one database's
    table never overlap: the maintenance guard). Another database's runs are in another folder, and
    an earlier release's unfinished run, which names no source, is never resumed: its cut-off may be
    another database's, and the rows it did not archive are archived under this run's own."""
    folder = runs_folder(source)
    keys = sorted(
        stored.key
        for stored in store.list_objects(folder + "/")
        if stored.key.startswith(f"{folder}/{table}-")
    )
    if not keys:
        return None
    latest = ArchiveRun.model_validate_json(store.read_bytes(keys[-1]))
    return None if latest.complete or latest.source != source else latest


def _rows_older_than(url: URL, settings: Settings, table: str, column: str, line: datetime) -> int:
    with connect(url, purpose="archive", connect_timeout=settings.connect_timeout_seconds) as connection:
        query = sql.SQL("SELECT count(*) FROM {} WHERE {} < %s").format(
            sql.Identifier(table), sql.Identifier(column)
        )
        row = connection.execute(query, (line,)).fetchone()
    return int(row[0]) if row else 0


def _table_bytes(url: URL, settings: Settings, table: str) -> int:
    with connect(url, purpose="archive", connect_timeout=settings.connect_timeout_seconds) as connection:
        row = connection.execute("SELECT pg_total_relation_size(%s::regclass)", (table,)).fetchone()
    return int(row[0]) if row else 0


def _vacuum(url: URL, settings: Settings, table: str) -> None:
    """Outside a transaction, as VACUUM requires: makes the freed space reusable and the statistics fresh."""
    with connect(
        url, purpose="archive", autocommit=True, connect_timeout=settings.connect_timeout_seconds
    ) as c:
        c.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
    _log.info("vacuumed %s", table)


def _outcome(
    table: str,
    line: datetime,
    dry_run: bool,
    rows: int,
    batches: list[ArchiveBatch],
    started: float,
    size_before: int,
    size_after: int,
    resumed: str | None,
    run_ids: list[str] | None = None,
    source: BackupSource | None = None,
) -> ArchiveOutcome:
    seconds = round(time.monotonic() - started, 3)
    return ArchiveOutcome(
        table=table,
        cutoff=line,
        dry_run=dry_run,
        rows_archived=rows,
        batches=len(batches),
        bytes_stored=sum(batch.bytes for batch in batches),
        seconds=seconds,
        rows_per_second=round(rows / seconds, 1) if seconds and not dry_run else 0.0,
        resumed_run=resumed,
        table_bytes_before=size_before,
        table_bytes_after=size_after,
        run_ids=run_ids or [],
        source=source,
    )
