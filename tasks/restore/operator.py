"""Restore a backup over a live database, on an operator's word, and undo it.

``swap`` (the default) builds the restored copy beside the target, migrates and checks it, and only
then swaps names in one short critical section; the replaced database stays, set aside, for
:func:`rollback`. ``in-place`` drops and recreates the target: for when there is no room for two.
Either way the dump's checksum is verified before anything is touched, and nothing happens
unless ``confirm`` repeats the target's name.

A restore comes in two halves so that a person can approve what was built: :func:`prepare_restore`
vets the backup and (swap) builds and checks the copy; :func:`finish_restore` puts it in place, or
:func:`discard_restore` drops it. Each half holds the database's maintenance guard; the wait between
them holds nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import URL

from models.backup import BackupSource, source_of
from models.errors import RestoreError, RestoreRefusedError, RestoreRejectedError
from models.rehearsal import RestoreMode, RestoreResult, RestoreSummary
from models.settings import Environment, Settings
from tasks.backup.catalog import read_manifest, rehearsals
from tasks.backup.source import database_source
from tasks.postgres.engine import database_url, make_engine, open_connection
from tasks.postgres.guard import Guard, maintenance_guard
from tasks.restore.copy import (
    Logger,
    Validator,
    copy_basis,
    vet_backup,
    work_directory,
)
from tasks.restore.leftovers import sweep
from tasks.restore.parts import fetch_backup
from tasks.restore.properties import DatabaseProperties
from tasks.restore.replacement import (
    RestoreJob,
    build_copy,
    rebuild_in_place,
    swap_in,
    target_properties,
)
from tasks.restore.runs import RunLease, hold_run, run_id
from tasks.restore.summary import compare_tables
from tasks.restore.swap import database_exists
from tasks.restore.target import CreatedDatabase, drop_created, live_oid, live_state
from tasks.storage import ObjectStore, open_store

_log = logging.getLogger(__name__)
_MAX_NAME = 63


#: Answers the summary of a built, checked copy: True to put it in place, False to drop it.
Approver = Callable[[RestoreSummary], bool]


def restore(
    settings: Settings,
    store: ObjectStore,
    *,
    backup_id: str,
    target: str,
    confirm: str | None,
    mode: RestoreMode = RestoreMode.SWAP,
    reseed: bool = False,
    from_database: str | None = None,
    validate: Validator | None = None,
    logger: Logger | None = None,
    approve: Approver | None = None,
) -> RestoreResult:
    """Restore *backup_id* (or ``latest``) over the database *target* on the configured server.

    The backup must come from a database named *target*, or *from_database* when that is given:
    ``latest`` is the newest backup of that database, and a backup of another one is refused.
    Everything that can refuse (confirmation, target, backup, revision, key, checksum) does so before
    the target is touched; raises on any failure, so a returned result is a restored, checked target.
    With *approve*, the summary of the checked copy is put to it before the target is touched, and a
    no drops the copy and raises :class:`RestoreRejectedError`.
    """
    prepared = prepare_restore(
        settings,
        store,
        backup_id=backup_id,
        target=target,
        confirm=confirm,
        mode=mode,
        reseed=reseed,
        from_database=from_database,
        validate=validate,
        logger=logger,
    )
    try:
        approved = approve is None or approve(prepared.summary)
    except BaseException:  # Ctrl-C at the question: nobody approved, so the copy goes now
        discard_restore(prepared)
        raise
    if not approved:
        discard_restore(prepared)
        raise RestoreRejectedError(
            f"the restore of {target} from backup {prepared.summary.backup_id} was rejected; "
            f"{target} was not touched",
            hint="run dbops restore again with another --backup, or not at all",
        )
    return finish_restore(prepared, store)


@dataclass
class PreparedRestore:
    """A restore up to the operator's decision: vetted, and in swap mode built and checked.

    It holds no guard, so a flow can wait for a person with it while the nightly backup runs. It
    holds its run's lock (*lease*), which keeps the copy from any sweep while this process lives;
    if the process dies, the mark on the copy still holds it until ``held_until``.
    """

    job: RestoreJob
    copy: CreatedDatabase | None
    target_oid: int | None
    summary: RestoreSummary
    lease: RunLease
    seconds: float = 0.0


def prepare_restore(
    settings: Settings,
    store: ObjectStore,
    *,
    backup_id: str,
    target: str,
    confirm: str | None,
    mode: RestoreMode = RestoreMode.SWAP,
    reseed: bool = False,
    from_database: str | None = None,
    validate: Validator | None = None,
    logger: Logger | None = None,
) -> PreparedRestore:
    """Vet the backup and, in swap mode, build and check the copy beside the target; the target is
    not touched. In-place mode builds nothing before the decision: it has no room for two."""
    log = logger or _log
    started = time.monotonic()
    server = database_url(settings).set(database="postgres")
    _check_request(settings, server, target, confirm, mode, reseed)
    identity = database_source(server, settings).system_identifier
    wanted = BackupSource(system_identifier=identity, database=from_database or target)
    manifest, pg_restore = vet_backup(store, backup_id, settings, server, wanted=wanted, target=target)
    now = datetime.now(UTC)
    result = RestoreResult(
        **copy_basis(manifest, server, pg_restore, settings),
        target=target,
        mode=mode,
        restored_at=now,
        reseeded=reseed,
    )
    job = RestoreJob(
        server, settings, target, manifest, run_id(), now, result, pg_restore, reseed, validate, log
    )
    lease = hold_run(server, settings, job.run)
    copy: CreatedDatabase | None = None
    try:
        with maintenance_guard(server, settings, target, "restore", logger=log):
            sweep(server, settings, run=job.run, held=target, logger=log)
            properties = target_properties(server, settings, target)  # refuses what could not be replaced
            if mode is RestoreMode.SWAP:
                copy = build_copy(job, store, properties)
        live = live_state(server, settings, target)
        if copy is not None:
            built = live_state(server, settings, copy.name)
            counts, copy_bytes, counted_in = built.rows, built.bytes, f"the checked copy {copy.name}"
        else:
            counts, copy_bytes, counted_in = manifest.row_counts, None, "the backup's manifest"
        summary = RestoreSummary(
            target=target,
            server=f"{server.host}:{server.port}",
            mode=mode,
            backup_id=manifest.backup_id,
            taken_at=manifest.started_at,
            source=manifest.database,
            revision=manifest.alembic_revision,
            rehearsal=rehearsals(store).get(manifest.backup_id),
            copy_database=copy.name if copy else None,
            copy_bytes=copy_bytes,
            live_bytes=live.bytes,
            tables=compare_tables(counts, live.rows),
            counted_in=counted_in,
        )
    except BaseException:
        if copy is not None:
            drop_created(copy, settings, logger=log)
        lease.release()
        raise
    return PreparedRestore(job, copy, live.oid, summary, lease, round(time.monotonic() - started, 3))


def finish_restore(prepared: PreparedRestore, store: ObjectStore) -> RestoreResult:
    """Put the approved copy in the target's place (swap), or rebuild the target (in place).

    First checks that the target and the copy are still the databases the summary described (same
    OIDs): a person may have answered an hour later, and an approval covers only what they saw.
    """
    job = prepared.job
    started = time.monotonic()
    try:
        with maintenance_guard(job.server, job.settings, job.target, "restore", logger=job.log) as guard:
            try:
                _check_unchanged(prepared)
            except RestoreError:
                if prepared.copy is not None:  # approved for a target that is gone: the copy has no use
                    drop_created(prepared.copy, job.settings, logger=job.log)
                raise
            properties = target_properties(job.server, job.settings, job.target)
            if prepared.copy is not None:
                assert properties is not None  # _check_unchanged saw the target
                job.result.previous_database = swap_in(job, prepared.copy, properties, guard)
            else:
                with work_directory(job.settings, job.run) as directory:
                    fetched = fetch_backup(store, job.manifest, job.settings, directory, logger=job.log)
                    fetched.verify(job.settings)  # every part sound before the target is dropped
                    job.result.timings.download, job.result.dump_bytes = fetched.seconds, fetched.dump_bytes
                    rebuild_in_place(job, properties, fetched, guard)
    finally:
        prepared.lease.release()
    result = job.result
    result.timings.total = round(prepared.seconds + time.monotonic() - started, 3)
    job.log.info(
        "restored backup %s into %s (%s) in %.1f s",
        job.manifest.backup_id,
        job.target,
        job.result.mode.value,
        result.timings.total,
    )
    return result


def discard_restore(prepared: PreparedRestore) -> None:
    """Drop the copy a rejected restore built; the target was never touched."""
    try:
        if prepared.copy is not None:
            drop_created(prepared.copy, prepared.job.settings, logger=prepared.job.log)
    finally:
        prepared.lease.release()
    prepared.job.log.warning(
        "the restore of %s from backup %s was not approved; %s was left as it was",
        prepared.job.target,
        prepared.job.manifest.backup_id,
        prepared.job.target,
    )


def _check_request(
    settings: Settings, server: URL, target: str, confirm: str | None, mode: RestoreMode, reseed: bool
) -> None:
    if not target or len(target.encode()) > _MAX_NAME:
        raise RestoreRefusedError(f"{target!r} is not a database name", hint="pass --target NAME")
    if confirm != target:
        raise RestoreRefusedError(
            f"restoring over {target} needs --confirm {target}; nothing was done",
            hint="repeat the target database's name exactly, to show which database you mean to replace",
        )
    if reseed and settings.environment is not Environment.DEVELOPMENT:
        raise RestoreRefusedError(
            f"reseeding after a restore is for development; this is {settings.environment.value}",
            hint="restore without reseed, or set DBOPS_ENVIRONMENT=development on a development database",
        )
    if mode is RestoreMode.SWAP:
        engine = make_engine(server, settings, purpose="restore")
        try:
            with open_connection(engine) as connection:
                exists = database_exists(connection, target)
        finally:
            engine.dispose()
        if not exists:
            raise RestoreRefusedError(
                f"database {target} does not exist on {server.host}:{server.port}, "
                "so there is nothing to swap",
                hint="check the name, or use --mode in-place to create it",
            )


def _check_unchanged(prepared: PreparedRestore) -> None:
    """Refuse when the target or the copy is no longer the database the approved summary described."""
    job = prepared.job
    target = live_oid(job.server, job.settings, job.target)
    if target != prepared.target_oid:
        seen = "did not exist" if prepared.target_oid is None else f"had OID {prepared.target_oid}"
        now = "does not exist" if target is None else f"has OID {target}"
        raise RestoreError(
            f"{job.target} changed while the restore waited for approval: it {seen}, and now {now}; "
            f"nothing was done",
            hint="another job replaced or dropped it, and the copy built for it was dropped; "
            "look at dbops status, then start the restore again",
        )
    if (
        prepared.copy is not None
        and live_oid(job.server, job.settings, prepared.copy.name) != prepared.copy.oid
    ):
        raise RestoreError(
            f"the restored copy {prepared.copy.name} is gone or was replaced while the restore waited "
            f"for approval; {job.target} was not touched",
            hint="an answer after DBOPS_RESTORE_APPROVAL_TIMEOUT_SECONDS may find the copy swept; "
            "start the restore again",
        )


def resume_in_place(
    settings: Settings,
    server: URL,
    *,
    backup_id: str,
    target: str,
    properties: DatabaseProperties | None,
    guard: Guard,
    logger: Logger | None = None,
) -> RestoreResult:
    """Finish an in-place restore whose run died after dropping *target* and before its copy was
    checked: restore the same backup again, as that run would have.

    Recovery (:mod:`tasks.restore.recovery`) calls this under *target*'s guard, which it holds: the
    target is gone, and the backup it was being replaced with is the only way back.
    """
    log = logger or _log
    store = open_store(settings)
    manifest, pg_restore = vet_backup(
        store, backup_id, settings, server, wanted=source_of(read_manifest(store, backup_id)), target=target
    )
    now = datetime.now(UTC)
    result = RestoreResult(
        **copy_basis(manifest, server, pg_restore, settings),
        target=target,
        mode=RestoreMode.IN_PLACE,
        restored_at=now,
        reseeded=False,
    )
    job = RestoreJob(server, settings, target, manifest, run_id(), now, result, pg_restore, False, None, log)
    with hold_run(server, settings, job.run), work_directory(settings, job.run) as directory:
        fetched = fetch_backup(store, manifest, settings, directory, logger=log)
        fetched.verify(settings)
        job.result.timings.download, job.result.dump_bytes = fetched.seconds, fetched.dump_bytes
        rebuild_in_place(job, properties, fetched, guard)
    return result
