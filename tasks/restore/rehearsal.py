"""The restore rehearsal: prove a backup restores, by restoring it.

Fetch the dump (sha256 checked before any database is touched), restore it into a scratch
database with parallel pg_restore, compare every table's rows with the manifest, migrate it to the
code's head and run the integrity checks on it. Every outcome is recorded beside the backup, and the
scratch database is dropped in every outcome unless asked to keep it.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from models.backup import rehearsal_key, source_of
from models.database_url import describe
from models.errors import DbopsError, RestoreError
from models.marks import DatabaseMark, MarkKind
from models.rehearsal import PhaseTimings, RehearsalRecord
from models.settings import Settings
from tasks.backup.source import database_source
from tasks.postgres.engine import database_url, make_engine, open_connection
from tasks.postgres.guard import maintenance_guard
from tasks.restore.copy import (
    Logger,
    Publisher,
    Validator,
    copy_basis,
    restore_and_check,
    vet_backup,
    work_directory,
)
from tasks.restore.leftovers import sweep
from tasks.restore.marks import write_mark
from tasks.restore.parts import fetch_backup
from tasks.restore.runs import hold_run, run_id
from tasks.restore.target import (
    CreatedDatabase,
    create_database,
    drop_created,
    rehearsal_server,
    scratch_settings,
    timestamped_name,
)
from tasks.schema.migrate import head_revision
from tasks.storage import ObjectStore

_log = logging.getLogger(__name__)


def rehearse(
    settings: Settings,
    store: ObjectStore,
    *,
    backup_id: str | None = None,
    keep: bool = False,
    validate: Validator | None = None,
    publish: Publisher | None = None,
    logger: Logger | None = None,
) -> RehearsalRecord:
    """Rehearse the restore of one backup and record the outcome beside it.

    Refusals (no such backup, a revision this code does not know, no key to decrypt it, a dump or
    pg_restore newer than the rehearsal server) raise before anything is touched and record nothing.
    Every other outcome, passed or failed, is recorded and returned; :func:`raise_for_failure` turns a
    failed one into an error.

    The checks that need only rows run while post-data builds the indexes
    (:func:`~tasks.restore.copy.restore_and_check`); *publish* gets the integrity report. A *validate*
    given instead runs all of its checks after the migration.
    """
    log = logger or _log
    preparing = time.monotonic()
    server = rehearsal_server(settings)
    wanted = database_source(database_url(settings), settings)
    manifest, pg_restore = vet_backup(store, backup_id, settings, server, wanted=wanted)
    run = run_id()
    with (
        hold_run(server, settings, run),
        maintenance_guard(server, settings, wanted.database, "rehearsal", logger=log),
    ):
        sweep(server, settings, run=run, held=wanted.database, set_aside=False, logger=log)
        record = RehearsalRecord(
            **copy_basis(manifest, server, pg_restore, settings),
            rehearsed_at=datetime.now(UTC),
            database=source_of(manifest).database,
        )
        timings = record.timings
        started = time.monotonic()
        timings.prepare = round(started - preparing, 3)
        created: CreatedDatabase | None = None
        try:
            with work_directory(settings, run) as directory:
                fetched = fetch_backup(store, manifest, settings, directory, logger=log)
                timings.download, record.dump_bytes = fetched.seconds, fetched.dump_bytes
                creating = time.monotonic()
                mark = DatabaseMark(
                    kind=MarkKind.SCRATCH, run=run, created=datetime.now(UTC), backup=manifest.backup_id
                )
                created = create_database(
                    server,
                    settings,
                    timestamped_name("rehearsal"),
                    mark=mark,
                    session_settings=scratch_settings(settings),
                )
                record.scratch_database = created.name
                timings.prepare = round(timings.prepare + time.monotonic() - creating, 3)
                restore_and_check(
                    record,
                    fetched,
                    created.url,
                    manifest,
                    settings,
                    pg_restore,
                    keep_ownership=False,
                    validate=validate,
                    log=log,
                    pending=record.pending_revisions,
                    staged=True,
                    publish=publish,
                    # A kept copy is looked at, and pending revisions are measured, WAL included.
                    unlogged=not keep and manifest.alembic_revision == head_revision(),
                )
        except DbopsError as error:
            record.failure = error.one_line()
        finally:
            timings.total = round(time.monotonic() - started, 3)
            dropping = time.monotonic()
            if created is not None:
                if keep:
                    record.scratch_kept = True
                    until = _hold(created, mark, settings, log)
                    log.warning(
                        "kept the scratch database %s on %s until %s UTC",
                        created.name,
                        describe(server),
                        f"{until:%Y-%m-%d %H:%M}",
                    )
                else:
                    drop_created(created, settings, logger=log)
            timings.drop = round(time.monotonic() - dropping, 3)
            store.put_bytes(rehearsal_key(manifest.backup_id), record.model_dump_json(indent=2).encode())
        log.info(
            "rehearsal of backup %s %s in %.1f s: %s",
            manifest.backup_id,
            "passed" if record.passed else "FAILED",
            timings.total,
            phase_line(timings),
        )
    return record


def _hold(created: CreatedDatabase, mark: DatabaseMark, settings: Settings, log: Logger) -> datetime:
    """Hold a kept scratch copy for ``DBOPS_STALE_AFTER_MINUTES`` after this run ends: its run is
    gone then, and without the hold the next sweep would drop what a person asked to look at."""
    until = datetime.now(UTC) + timedelta(minutes=settings.stale_after_minutes)
    engine = make_engine(created.server, settings, purpose="rehearsal")
    try:
        with open_connection(engine, autocommit=True) as connection:
            write_mark(connection, created.name, created.oid, mark.model_copy(update={"held_until": until}))
    except DbopsError as error:  # housekeeping: the copy stays either way, only the hold is missing
        log.warning("could not hold the kept scratch database %s: %s", created.name, error.one_line())
    finally:
        engine.dispose()
    return until


def raise_for_failure(record: RehearsalRecord) -> None:
    if not record.passed:
        raise RestoreError(
            f"the rehearsal of backup {record.backup_id} failed",
            detail=record.failure,
            hint="this backup is not proven restorable; see the rehearsal record beside it",
        )


def phase_line(timings: PhaseTimings) -> str:
    """Every phase's seconds on one line, for the log an operator reads."""
    return ", ".join(
        f"{name.replace('_', '-')} {seconds:.1f} s"
        for name, seconds in timings.model_dump().items()
        if name not in ("restore", "total")
    )
