"""One pg_dump of a backup, from the backup's exported snapshot, streamed through compression,
encryption and hashing into one stored object, its table of contents read as it streams past.

A single-object backup is one such dump; a multi-part backup is several, each a part. A pg_dump that
gives up waiting for a lock names the sessions holding the tables it waited for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import URL

from models.database_url import describe
from models.errors import BackupError, CommandError
from models.retention import ObjectLock
from models.settings import Settings
from tasks.backup.progress import Progress
from tasks.backup.source import TABLES_IN_SCHEMA
from tasks.backup.streams import CheckedSource, Hashing, compress, encrypt
from tasks.backup.toc import DumpCheck
from tasks.postgres.binaries import Program
from tasks.postgres.command import PgProcess
from tasks.postgres.engine import make_engine, open_connection
from tasks.postgres.libpq import child_environment, conninfo
from tasks.postgres.locks import exclusive_holders
from tasks.storage import ObjectStore


@dataclass(frozen=True)
class DumpJob:
    """Everything one dump needs, decided before pg_dump starts."""

    url: URL
    settings: Settings
    store: ObjectStore
    key: str
    snapshot: str
    pg_dump: Program
    pg_restore: Program
    log: logging.Logger | logging.LoggerAdapter[logging.Logger]
    lock: ObjectLock | None = None


@dataclass(frozen=True)
class StreamedDump:
    """One pg_dump's output as it was stored: the stored bytes' hash and size, pg_dump's own size, and
    its table of contents."""

    stored: Hashing
    dump_bytes: int
    listing: str


def start_pg_dump(job: DumpJob, selection: list[str], environment: dict[str, str]) -> PgProcess:
    """pg_dump of *selection* (a section, table patterns, or nothing: the whole database) in the
    backup's snapshot, uncompressed custom format on its stdout, waiting for locks at most as long
    as the settings allow."""
    settings = job.settings
    arguments = [
        "--format=custom",
        "--compress=0",
        f"--snapshot={job.snapshot}",
        f"--lock-wait-timeout={int(settings.lock_wait_timeout_seconds * 1000)}",
        *selection,
        "--dbname",
        conninfo(job.url, purpose="backup dump"),
    ]
    return PgProcess(
        job.pg_dump.path,
        arguments,
        environment=environment,
        timeout_seconds=settings.command_timeout_seconds,
        logger=job.log,
    )


def stream_dump(
    job: DumpJob,
    key: str,
    selection: list[str],
    part: str,
    progress: Progress,
    on_progress: Callable[[Progress], None],
    *,
    expected_size: int | None = None,
    require_data: bool = True,
    keep_going: Callable[[], None] | None = None,
) -> StreamedDump:
    """pg_dump (with *selection*: a section, or table patterns) streamed into *key* through compression,
    encryption and hashing. *keep_going* is asked at every chunk and raises to stop the dump."""
    url, settings = job.url, job.settings
    dump_bytes = 0
    with (
        child_environment(url) as environment,
        start_pg_dump(job, selection, environment) as dump,
        DumpCheck(job.pg_restore, job.log, settings.command_timeout_seconds) as dump_check,
    ):

        def seen(chunk: bytes) -> None:
            nonlocal dump_bytes
            if keep_going is not None:
                keep_going()
            dump_bytes += len(chunk)
            progress.add(part, len(chunk))
            dump_check.feed(chunk)
            on_progress(progress)

        source = CheckedSource(dump.stdout, dump.finish, seen).buffered()
        stream = compress(
            source,
            settings.backup_compression,
            settings.backup_compression_level,
            settings.backup_compression_threads,
        )
        if settings.backup_age_recipients:
            stream = encrypt(stream, settings.backup_age_recipients)
        hashed = Hashing(stream)
        try:
            job.store.put_stream(
                key, hashed.buffered(), expected_size=expected_size or progress.estimated_bytes, lock=job.lock
            )
        except CommandError as error:
            blocked = _blocked_tables(error.stderr_tail)
            if blocked is not None:
                raise lock_wait_error(job, "pg_dump of", blocked) from None
            raise BackupError(
                f"pg_dump of {describe(url)} ({part}) failed; nothing was stored",
                detail=error.detail,
                hint="see the pg_dump messages above; the next run retries from scratch",
            ) from None
        dump_check.verify(require_data=require_data)
    if dump_bytes == 0 or hashed.bytes == 0:
        raise BackupError(f"the dump of {describe(url)} is empty", hint="check the pg_dump messages")
    return StreamedDump(hashed, dump_bytes, dump_check.listing)


def _blocked_tables(pg_dump_messages: str) -> list[str] | None:
    """The tables pg_dump's lock wait gave up on, from its ``Query was: LOCK TABLE a, b IN ...`` line
    (``--lock-wait-timeout`` works through statement_timeout); None if that is not what failed."""
    if "LOCK TABLE " not in pg_dump_messages or "statement timeout" not in pg_dump_messages:
        return None
    listed = pg_dump_messages.split("LOCK TABLE ", 1)[1].split(" IN ", 1)[0]
    return [name.strip() for name in listed.split(",")]


def lock_wait_error(job: DumpJob, doing: str, tables: list[str] | None) -> BackupError:
    """The failed lock wait, naming the sessions that hold any of *tables* (every table when None)."""
    settings = job.settings
    with open_connection(make_engine(job.url, settings, purpose="backup lock report")) as connection:
        candidates = tables or list(connection.execute(TABLES_IN_SCHEMA).scalars())
        held = {name: exclusive_holders(connection, name) for name in candidates}
    holders = {holder.pid: holder for found in held.values() for holder in found}
    names = ", ".join(name for name, found in held.items() if found) or "a table"
    return BackupError(
        f"{doing} {describe(job.url)} waited more than {settings.lock_wait_timeout_seconds:g} s for a lock "
        f"on {names}; nothing was stored",
        detail="held by " + "; ".join(holder.describe() for holder in holders.values())
        if holders
        else "the lock has been released since",
        hint="let that session finish (a migration?) and back up again, or end it with "
        "pg_terminate_backend(pid); DBOPS_LOCK_WAIT_TIMEOUT_SECONDS sets how long a backup waits",
    )
