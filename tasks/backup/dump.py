"""Take a backup: pg_dump in an exported snapshot, streamed through compression and encryption to the store.

The snapshot holder counts every table's rows inside the very snapshot pg_dump dumps, so the
manifest describes exactly what the dump holds, whatever the application writes meanwhile. The
dump's table of contents is read by ``pg_restore --list`` while it streams past, and the manifest is
written last: a backup without one is incomplete and is never listed.

With DBOPS_BACKUP_OBJECT_LOCK, the dump and the manifest (the backup's immutable objects) are written
locked until the retention policy could prune the backup at the earliest
(:func:`models.retention.object_lock_until`). Whether the store can lock at all is asked before
anything else happens. Pins and rehearsal records, which dbops rewrites and deletes, live beside them
and are never written with a lock.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import OperationalError, ProgrammingError

from models.backup import (
    BackupManifest,
    backup_folder,
    dump_key,
    new_backup_id,
    parts_digest,
)
from models.database_url import describe
from models.errors import BackupError
from models.retention import ObjectLock
from models.settings import Settings
from tasks.backup.catalog import write_manifest
from tasks.backup.heartbeat import running_backup
from tasks.backup.parts import dump_parts, with_row_counts
from tasks.backup.pg_dump import DumpJob, lock_wait_error, stream_dump
from tasks.backup.plan import BackupPlan, count_tables, current_schema_relations, hold_tables, read_plan
from tasks.backup.progress import Progress
from tasks.backup.source import (
    alembic_revision,
    count_rows,
    database_source,
    read_source,
    recipient_fingerprint,
    reported_server_version,
)
from tasks.postgres.binaries import matching_program, search_path
from tasks.postgres.engine import make_engine, open_connection
from tasks.postgres.guard import Guard
from tasks.postgres.libpq import needs_tls
from tasks.postgres.locks import LOCK_NOT_AVAILABLE
from tasks.storage import ObjectStore

_log = logging.getLogger(__name__)
#: SQLSTATE insufficient_privilege.
INSUFFICIENT_PRIVILEGE = "42501"
T = TypeVar("T")

DATABASE_SIZE = text("SELECT pg_database_size(current_database())")


def backup(
    url: URL,
    settings: Settings,
    store: ObjectStore,
    *,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    guard: Guard | None = None,
) -> BackupManifest:
    """Back up *url*; *guard*: the caller holds the database's maintenance guard (see
    :func:`tasks.backup.heartbeat.running_backup`, which keeps the backup visible while it runs)."""
    log = logger or _log
    started_at = datetime.now(UTC)
    lock = settings.object_lock_for(started_at)
    if lock is not None:
        # Before the database is touched: a store that cannot lock refuses now, not after the dump.
        warning = store.check_object_lock()
        if warning:
            log.warning("%s", warning)
    backup_id = new_backup_id(started_at, secrets.token_hex(3))
    source = database_source(url, settings)
    with running_backup(store, settings, backup_id, source, guarded=guard is not None, log=log):
        return _take(url, settings, store, log, on_progress, started_at, lock, backup_id)


def _take(
    url: URL,
    settings: Settings,
    store: ObjectStore,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
    on_progress: Callable[[Progress], None] | None,
    started_at: datetime,
    lock: ObjectLock | None,
    backup_id: str,
) -> BackupManifest:
    if lock is not None:
        log.info(
            "backup %s: every object and the manifest locked (%s) until %s",
            backup_id,
            lock.mode.value,
            lock.retain_until.isoformat(timespec="seconds"),
        )
    encrypted = bool(settings.backup_age_recipients)
    key = dump_key(backup_id, settings.backup_compression, encrypted=encrypted)
    with open_connection(
        make_engine(url, settings, purpose="backup snapshot", server_settings=_snapshot_session(settings))
    ) as snapshot_holder:
        snapshot_holder.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        snapshot = str(snapshot_holder.execute(text("SELECT pg_export_snapshot()")).scalar_one())
        server_version, server_major = reported_server_version(snapshot_holder)
        source = read_source(snapshot_holder)
        estimate = snapshot_holder.execute(DATABASE_SIZE).scalar_one()
        places = search_path(settings.pg_bindir)
        pg_dump = matching_program(
            "pg_dump", server_major, places, f"the server (PostgreSQL {server_version})", tls=needs_tls(url)
        )
        if pg_dump.major > server_major:
            log.warning(
                "no pg_dump %d was found, so pg_dump %s dumps this PostgreSQL %s server: the dump will "
                "restore only into PostgreSQL %d or later; install postgresql-client-%d where backups run",
                server_major,
                pg_dump.number,
                server_version,
                pg_dump.major,
                server_major,
            )
        pg_restore = matching_program("pg_restore", pg_dump.major, places, pg_dump.version)
        log.info("backup %s of %s with %s (%s)", backup_id, describe(url), pg_dump.path, pg_dump.version)
        job = DumpJob(url, settings, store, key, snapshot, pg_dump, pg_restore, log, lock)
        progress = Progress(estimated_bytes=int(estimate))
        plan = read_plan(snapshot_holder, settings)
        _hold(job, snapshot_holder, plan)
        fields: dict[str, Any]
        if plan is None:
            uploaded, (row_counts, revision) = dump_while_counting(
                job,
                1,
                lambda report: stream_dump(job, key, [], "dump", progress, report),
                on_progress,
                snapshot_holder,
                lambda connection: count_rows(connection),
            )
            fields = {
                "object_key": key,
                "stored_bytes": uploaded.stored.bytes,
                "dump_bytes": uploaded.dump_bytes,
                "sha256": uploaded.stored.sha256.hexdigest(),
            }
        else:
            log.info("backup %s: %d data parts of %d tables", backup_id, len(plan.groups), len(plan.tables))
            parts, (counted, revision) = dump_while_counting(
                job,
                len(plan.groups) + 2,
                lambda report: dump_parts(job, plan, backup_id, progress, report),
                on_progress,
                snapshot_holder,
                lambda connection: count_tables(connection, plan.counted_relations()),
            )
            parts = with_row_counts(parts, counted)
            row_counts = plan.current_schema_counts(counted)
            fields = {
                "format_version": 2,
                "parts": parts,
                "object_key": backup_folder(backup_id) + "/",
                "sha256": parts_digest(parts),
                "stored_bytes": sum(part.stored_bytes for part in parts),
                "dump_bytes": sum(part.dump_bytes for part in parts),
            }
        snapshot_holder.rollback()
    finished_at = datetime.now(UTC)
    manifest = BackupManifest(
        backup_id=backup_id,
        database=describe(url),
        source=source,
        server_version=str(server_version),
        pg_dump_version=pg_dump.number,
        compression=settings.backup_compression,
        compression_level=settings.backup_compression_level,
        encrypted_for=[recipient_fingerprint(recipient) for recipient in settings.backup_age_recipients],
        started_at=started_at,
        finished_at=finished_at,
        duration_seconds=round((finished_at - started_at).total_seconds(), 3),
        alembic_revision=revision,
        row_counts=row_counts,
        **fields,
    )
    write_manifest(store, manifest, lock)
    log.info(
        "backup %s complete: %d bytes stored in %d object(s)",
        backup_id,
        manifest.stored_bytes,
        len(manifest.parts) or 1,
    )
    return manifest


def _hold(job: DumpJob, snapshot_holder: Connection, plan: BackupPlan | None) -> None:
    """Lock, before any pg_dump starts, every table the backup counts (and, in parts, dumps) until the
    snapshot transaction ends (:func:`tasks.backup.plan.hold_tables`)."""
    relations = list(plan.counted_relations().values()) if plan else current_schema_relations(snapshot_holder)
    try:
        hold_tables(snapshot_holder, relations)
    except OperationalError as error:
        if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        raise lock_wait_error(job, "the backup of", None) from None
    except ProgrammingError as error:
        if getattr(error.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
            raise
        raise BackupError(
            f"the backup of {describe(job.url)} cannot read every table it dumps; nothing was stored",
            detail=str(error.orig).splitlines()[0],
            hint="grant the backup's role SELECT on every table (pg_dump needs it as well)",
        ) from None


def _snapshot_session(settings: Settings) -> dict[str, str]:
    """The snapshot holder's session: bounded waits for locks and statements, and no idle timeout of the
    server's own, since it sits idle in its transaction while pg_dump streams what it exported."""
    return {
        "lock_timeout": f"{int(settings.lock_wait_timeout_seconds * 1000)}ms",
        "statement_timeout": f"{int(settings.command_timeout_seconds * 1000)}ms",
        "idle_in_transaction_session_timeout": "0",
    }


def dump_while_counting(
    job: DumpJob,
    producers: int,
    dump: Callable[[Callable[[Progress], None]], T],
    on_progress: Callable[[Progress], None] | None,
    snapshot_holder: Connection,
    count: Callable[[Connection], dict[str, int]],
) -> tuple[T, tuple[dict[str, int], str | None]]:
    """Run *dump* and, on the snapshot holder's connection meanwhile, *count* every table's rows.

    The counts run in the exported snapshot, so they are exactly the dump's rows, at no cost to the
    backup's duration. They start once each of the *producers* (pg_dump processes) has produced
    output, i.e. has imported the snapshot: an error in the holder's transaction before that would
    invalidate it under a pg_dump's feet.
    """
    dump_running, dump_failed = threading.Event(), threading.Event()
    started: set[int] = set()

    def count_in_snapshot() -> tuple[dict[str, int], str | None]:
        dump_running.wait()
        if dump_failed.is_set():
            return {}, None
        try:
            return count(snapshot_holder), alembic_revision(snapshot_holder)
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            raise lock_wait_error(job, "counting the rows of", None) from None

    def report(current: Progress) -> None:
        started.add(threading.get_ident())
        if len(started) >= producers:
            dump_running.set()
        if on_progress is not None:
            on_progress(current)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-counts") as counter:
        counted = counter.submit(count_in_snapshot)
        try:
            uploaded = dump(report)
        except BaseException:
            dump_failed.set()
            raise
        finally:
            dump_running.set()
        return uploaded, counted.result()
