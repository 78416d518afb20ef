"""Stream chosen tables' rows out of a stored dump into temporary tables of one live-database session,
and prove the dump before anything else happens.

    store -> sha256 -> age -> zstd/gzip -> pg_restore --data-only -n SCHEMA -t T... -f -
          -> COPY blocks (copy_stream) -> COPY ... FROM STDIN into a temporary table per table

Why this way:

- **Only the chosen tables are read.** pg_restore picks their TABLE DATA entries (``-n``/``-t``) out
  of the custom-format dump as it streams past on stdin, and skips the other tables' data. No file is
  written: a table restore needs no room for the whole dump, unlike ``fetch`` (whose
  ``pg_restore --jobs`` must seek in a file).
- **Rows, not a database.** ``--data-only -f -`` makes pg_restore write SQL text instead of connecting
  anywhere. Its COPY blocks are COPY's text format, exactly what ``COPY ... FROM STDIN`` reads, so each
  block goes through psycopg's ``cursor.copy()`` unchanged; the ``SET`` lines (a newer pg_dump's
  ``transaction_timeout``, say) are never run, so a dump of a newer pg_dump loads into an older server.
- **The checksum comes first.** The stored object's sha256 is known only at the end of the stream, so
  the rows go into temporary tables: session-private, never WAL-logged, gone with the session
  whatever kills it. Nothing visible to anyone else exists until the whole object has been hashed
  and matched its manifest (and unpacked to the size pg_dump wrote); only then does the caller create
  the schema. A corrupt dump therefore leaves no schema behind, and the live tables were never in reach.
- **Whatever happens, the whole object is read.** pg_restore exits once its last table is done; the
  rest of the dump is still read and unpacked (its bytes discarded), and on a failure too, so the
  verdict on the stored object is always complete: a corrupt object is reported as corrupt, not as
  whatever error its garbage caused downstream.
"""

from __future__ import annotations

import io
import subprocess
import threading
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from typing import IO, Any, cast

import psycopg
from psycopg import sql

from models.backup import BackupManifest, BackupPart, PartKind, stored_parts
from models.errors import CommandError, DbopsError, RestoreError, RestoreRefusedError
from models.settings import Settings
from tasks.backup.streams import CHUNK, Hashing
from tasks.postgres.binaries import Program
from tasks.postgres.command import PgProcess
from tasks.restore.copy import Logger
from tasks.restore.fetch import unpacked, verify_stored, verify_unpacked
from tasks.restore.tables.catalog import Connection, LiveCatalog
from tasks.restore.tables.copy_stream import (
    CopyData,
    CopyEnd,
    CopyStart,
    CopyStreamError,
    CopyStreamParser,
    Event,
    Setting,
)
from tasks.storage import ObjectStore


@dataclass(frozen=True)
class StagedTable:
    table: str
    staging: str = ""
    columns: tuple[str, ...] = ()
    rows: int = 0

    @property
    def relation(self) -> sql.Composed:
        return sql.SQL("pg_temp.{}").format(sql.Identifier(self.staging))


def stage_tables(
    connection: Connection,
    store: ObjectStore,
    manifest: BackupManifest,
    *,
    identities: list[object],
    pg_restore: Program,
    catalog: LiveCatalog,
    tables: Sequence[str],
    settings: Settings,
    log: Logger,
) -> dict[str, StagedTable]:
    """Each of *tables*' rows in the backup, in a temporary table of *connection*'s session, with
    every stored object read proven to be the manifest's; raises (the temporary tables are then the
    caller's to drop with the session) if one is not, or if the rows cannot be loaded.

    A multi-part backup is read only in the data parts that hold the tables, one part after another.
    """
    staged: dict[str, StagedTable] = {}
    for part in stored_parts(manifest):
        if part.kind is PartKind.WHOLE:
            chosen = list(tables)
        else:
            chosen = [table for table in tables if f"{catalog.schema}.{table}" in part.tables]
        if chosen:
            staged |= _stage_part(
                connection, store, manifest, part, identities, pg_restore, catalog, chosen, settings, log
            )
    missing = [table for table in tables if table not in staged]
    if missing:
        raise RestoreError(
            f"backup {manifest.backup_id} holds no rows of {', '.join(missing)} in schema {catalog.schema}",
            detail="pg_restore found no table data for them",
            hint="check that the backup is of this database (dbops backups)",
        )
    return staged


def _stage_part(
    connection: Connection,
    store: ObjectStore,
    manifest: BackupManifest,
    part: BackupPart,
    identities: list[object],
    pg_restore: Program,
    catalog: LiveCatalog,
    tables: Sequence[str],
    settings: Settings,
    log: Logger,
) -> dict[str, StagedTable]:
    arguments = ["--data-only", "--file", "-", "--schema", catalog.schema]
    for table in tables:
        arguments += ["--table", table]
    stored = Hashing(store.open_read(part.object_key))
    loader = _Loader(connection, catalog, tables, manifest.backup_id)
    failure: BaseException | None = None
    with PgProcess(
        pg_restore.path,
        arguments,
        stdin=subprocess.PIPE,
        timeout_seconds=settings.command_timeout_seconds,
        logger=log,
    ) as running:
        feeder = _Feeder(unpacked(stored.buffered(), manifest, identities), running.stdin)
        feeder.start()
        try:
            parser = CopyStreamParser()
            while chunk := cast(io.BufferedReader, running.stdout).read1(CHUNK):
                for event in parser.feed(chunk):
                    loader.handle(event)
            running.finish()
            parser.finish()
        except Exception as error:  # judged below, once the whole object has been read
            failure = error
            loader.abort()
    # Leaving the block ended pg_restore if it was still running, so the feeder reads on to the end.
    feeder.join()
    stored.drain()
    verify_stored(stored, manifest.backup_id, part, store)
    verify_unpacked(manifest.backup_id, part, feeder.failure, feeder.bytes)
    if failure is not None:
        raise _as_restore_error(failure, manifest.backup_id) from None
    log.info(
        "read %s from backup %s (%d bytes stored, %d unpacked; sha256 matches the manifest)",
        ", ".join(f"{staged.table} ({staged.rows} rows)" for staged in loader.staged.values()),
        manifest.backup_id,
        stored.bytes,
        feeder.bytes,
    )
    return loader.staged


class _Feeder(threading.Thread):
    """Reads the unpacked dump to its end, handing it to pg_restore for as long as pg_restore reads."""

    def __init__(self, source: IO[bytes], sink: IO[bytes]) -> None:
        super().__init__(daemon=True, name="table-restore-feeder")
        self._source = source
        self._sink: IO[bytes] | None = sink
        self.bytes = 0
        self.failure: Exception | None = None

    def run(self) -> None:
        try:
            while chunk := self._source.read(CHUNK):
                self.bytes += len(chunk)
                if self._sink is not None:
                    try:
                        self._sink.write(chunk)
                    except (OSError, ValueError):  # pg_restore has what it needs, or was stopped
                        self._close()
        except Exception as error:  # handed to the verdict, after the checksum
            self.failure = error
        finally:
            self._close()

    def _close(self) -> None:
        if self._sink is not None:
            with suppress(OSError, ValueError):
                self._sink.close()
            self._sink = None


class _Loader:
    """Turns COPY blocks into temporary tables shaped like the live tables' columns the backup has."""

    def __init__(
        self, connection: Connection, catalog: LiveCatalog, tables: Sequence[str], backup_id: str
    ) -> None:
        self._connection = connection
        self._catalog = catalog
        self._tables = set(tables)
        self._backup_id = backup_id
        self._copy: Any = None
        self._block: StagedTable | None = None
        self._stack = ExitStack()
        self.staged: dict[str, StagedTable] = {}

    def handle(self, event: Event) -> None:
        if isinstance(event, Setting):
            self._connection.execute("SELECT set_config(%s, %s, false)", [event.name, event.value])
        elif isinstance(event, CopyStart):
            self._start(event)
        elif isinstance(event, CopyData):
            self._copy.write(event.data)
        elif isinstance(event, CopyEnd):
            self._stack.close()
            assert self._block is not None
            counted = self._connection.execute(
                sql.SQL("SELECT count(*) FROM {}").format(self._block.relation)
            )
            row = counted.fetchone()
            self.staged[self._block.table] = StagedTable(
                self._block.table, self._block.staging, self._block.columns, int(row[0]) if row else 0
            )
            self._block = None

    def abort(self) -> None:
        """Abandon a COPY in progress, so the session can still be used (or closed) cleanly."""
        with suppress(Exception):
            self._stack.__exit__(RestoreError, RestoreError("table restore stopped"), None)

    def _start(self, event: CopyStart) -> None:
        if (
            event.schema != self._catalog.schema
            or event.table not in self._tables
            or event.table in self.staged
        ):
            raise RestoreError(
                f"pg_restore wrote rows of {event.schema}.{event.table}, which were not asked for"
            )
        live = self._catalog.tables[event.table]
        unknown = [column for column in event.columns if column not in live.columns]
        if unknown:
            raise RestoreRefusedError(
                f"backup {self._backup_id}'s {event.table} has column(s) {', '.join(unknown)}, which "
                "the live table lacks; nothing was done",
                detail="the backup was taken at another schema revision than the live database's",
                hint="migrate the live database to the backup's revision first (dbops migrate), "
                "or restore from a backup taken at the live revision",
            )
        staging = f"restored_{len(self.staged) + 1}"
        columns = sql.SQL(", ").join(map(sql.Identifier, event.columns))
        self._connection.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(
                sql.Identifier(staging), columns, self._catalog.qualified(event.table)
            )
        )
        self._block = StagedTable(event.table, staging, event.columns)
        target = self._block.relation
        if event.columns:
            target = sql.SQL("{} ({})").format(target, columns)
        cursor = self._stack.enter_context(self._connection.cursor())
        self._copy = self._stack.enter_context(cursor.copy(sql.SQL("COPY {} FROM STDIN").format(target)))


def _as_restore_error(failure: BaseException, backup_id: str) -> BaseException:
    """The failure of a stream whose stored object proved sound, as one line for the operator."""
    if isinstance(failure, CommandError):
        return RestoreError(
            f"pg_restore could not read the tables out of backup {backup_id}",
            detail=failure.detail or failure.message,
            hint="the object matches its manifest; see pg_restore's messages above",
        )
    if isinstance(failure, DbopsError):
        return failure
    if isinstance(failure, psycopg.Error):
        return RestoreError(
            f"the rows of backup {backup_id} could not be loaded into the live database's session",
            detail=(failure.diag.message_primary or str(failure)).splitlines()[0],
            hint="nothing was created; check the live table's column types against the backup's revision",
        )
    if isinstance(failure, CopyStreamError):
        return RestoreError(f"pg_restore's output for backup {backup_id} ended early", detail=str(failure))
    return failure
