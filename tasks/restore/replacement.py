"""Building a restore's replacement database and putting it in the target's place.

What :mod:`tasks.restore.operator` runs once a restore is vetted: the copy beside the target (swap)
or in its stead (in place), the checks it must pass, the target's properties it is given, and the
renames. Each function leaves the target as it was unless it returns normally.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import URL, Engine

from models.backup import BackupManifest
from models.errors import DbopsError, RestoreError
from models.marks import DatabaseMark, MarkKind, Sequence
from models.rehearsal import RestoreResult
from models.settings import Settings
from tasks.postgres.binaries import Program
from tasks.postgres.engine import make_engine, open_connection
from tasks.postgres.failpoints import failpoint
from tasks.postgres.guard import Guard
from tasks.restore.copy import Logger, Validator, restore_and_check, work_directory
from tasks.restore.journal import Database, Exchange, exchange, rebuild
from tasks.restore.marks import write_mark
from tasks.restore.parts import FetchedBackup, fetch_backup
from tasks.restore.preflight import check_replaceable
from tasks.restore.properties import DatabaseProperties, granting_statements, read_properties
from tasks.restore.target import CreatedDatabase, create_database, derived_name, drop_created, live_oid
from tasks.storage import ObjectStore

SET_ASIDE_MARK = "_pre_restore"


@dataclass(frozen=True)
class RestoreJob:
    """One restore, as its steps share it."""

    server: URL
    settings: Settings
    target: str
    manifest: BackupManifest
    run: str
    now: datetime
    result: RestoreResult
    pg_restore: Program
    reseed: bool
    validate: Validator | None
    log: Logger

    def held(self) -> DatabaseMark:
        """The mark of a checked copy: held for the operator's answer, however long the run waits."""
        until = datetime.now(UTC) + timedelta(seconds=self.settings.restore_approval_timeout_seconds)
        return self.mark(held_until=until)

    def mark(self, **changes: object) -> DatabaseMark:
        return DatabaseMark(
            kind=MarkKind.RESTORING,
            run=self.run,
            created=self.now,
            target=self.target,
            backup=self.manifest.backup_id,
        ).model_copy(update=changes)


def fill_and_check(job: RestoreJob, dump: FetchedBackup, url: URL, *, what: str, hint: str) -> None:
    """Restore into the empty database at *url* (owners and grants kept: same server), then check it."""
    restore_and_check(
        job.result,
        dump,
        url,
        job.manifest,
        job.settings,
        job.pg_restore,
        keep_ownership=True,
        validate=job.validate,
        log=job.log,
        reseed=job.reseed,
    )
    if not job.result.passed:
        raise RestoreError(
            f"{what} failed its checks, so the restore of backup {job.result.backup_id} stopped",
            detail=job.result.failure,
            hint=hint,
        )


def target_properties(server: URL, settings: Settings, target: str) -> DatabaseProperties | None:
    """*target*'s own properties, after refusing a target this role could not replace and give them
    back to (:mod:`tasks.restore.preflight`); None when there is no such database."""
    engine = make_engine(server, settings, purpose="restore")
    try:
        with open_connection(engine) as connection:
            properties = read_properties(connection, target)
            if properties is not None:
                check_replaceable(connection, target, properties)
            return properties
    finally:
        engine.dispose()


def build_copy(job: RestoreJob, store: ObjectStore, properties: DatabaseProperties | None) -> CreatedDatabase:
    """Build the copy beside the target and check it; the target is not touched. A copy that fails
    is dropped. The checked copy's mark then holds it for the approval wait."""
    name = derived_name(job.target, "_restoring", datetime.now(UTC))
    copy = create_database(job.server, job.settings, name, mark=job.mark(), like=properties)
    try:
        with work_directory(job.settings, job.run) as directory:
            fetched = fetch_backup(store, job.manifest, job.settings, directory, logger=job.log)
            job.result.timings.download, job.result.dump_bytes = fetched.seconds, fetched.dump_bytes
            fill_and_check(
                job,
                fetched,
                copy.url,
                what=f"the restored copy {copy.name}",
                hint="the target was not replaced; look at the backup with dbops rehearse --backup ID --keep",
            )
        _mark(job, copy, job.held())
    except BaseException:
        drop_created(copy, job.settings, logger=job.log)  # gone only while it is still the copy
        raise
    return copy


def _mark(job: RestoreJob, copy: CreatedDatabase, mark: DatabaseMark) -> None:
    engine = make_engine(job.server, job.settings, purpose="restore")
    try:
        with open_connection(engine, autocommit=True) as connection:
            write_mark(connection, copy.name, copy.oid, mark)
    finally:
        engine.dispose()


def swap_in(job: RestoreJob, copy: CreatedDatabase, properties: DatabaseProperties, guard: Guard) -> str:
    """Give the checked copy the target's properties, then swap names (:func:`journal.exchange`).

    The replaced database is kept, marked as set aside for :func:`~tasks.restore.rollback.rollback`;
    returns its name. If the swap fails, the target is left as it was and the approved copy is kept,
    held for another approval period: a step that failed is no reason to lose a checked copy.
    """
    set_aside = derived_name(job.target, SET_ASIDE_MARK, datetime.now(UTC))
    target_oid = live_oid(job.server, job.settings, job.target)
    assert target_oid is not None  # the caller checked that the target is the one approved
    engine = make_engine(job.server, job.settings, purpose="restore swap")
    try:
        failpoint("swap.grant")
        guard.verify("swap.grant")
        _grant(engine, copy.name, properties)
        exchange(
            engine,
            Exchange(
                sequence=Sequence.SWAP,
                target=Database(job.target, target_oid),
                replacement=Database(copy.name, copy.oid),
                replacement_mark=job.held(),
                run=job.run,
                moved_to=set_aside,
                moved_mark=job.mark(
                    kind=MarkKind.SET_ASIDE, comment=properties.comment, swapped_in_oid=copy.oid
                ),
                target_comment=properties.comment,
            ),
            guard,
            job.log,
        )
    except DbopsError as error:
        kept = _keep_for_retry(job, copy)
        raise RestoreError(
            f"the swap of {job.target} stopped: {error.message.rstrip('.')}; {job.target} accepts "
            f"connections as before" + (f", and the checked copy {copy.name} is kept" if kept else ""),
            detail=error.detail,
            hint=error.hint,
        ) from None
    except BaseException:
        _keep_for_retry(job, copy)
        raise
    finally:
        engine.dispose()
    job.log.info(
        "database %s is now the restored copy; the previous one is kept as %s", job.target, set_aside
    )
    return set_aside


def _keep_for_retry(job: RestoreJob, copy: CreatedDatabase) -> bool:
    """Hold the checked copy for another approval period; False if it is no longer there as a copy."""
    try:
        _mark(job, copy, job.held())
    except Exception as error:  # the copy took the target's name, or is gone: nothing to hold
        job.log.debug("not holding %s: %s", copy.name, error)
        return False
    return True


def rebuild_in_place(
    job: RestoreJob, properties: DatabaseProperties | None, dump: FetchedBackup, guard: Guard
) -> None:
    """Drop the target, then build the copy under another name and give it the target's name only
    once it is restored, migrated and checked (:func:`journal.rebuild`): until then no application can
    connect to a half-filled database. A copy that fails its checks is kept, marked, for a person."""
    target = job.target
    target_oid = live_oid(job.server, job.settings, target)
    name = derived_name(target, "_restoring", datetime.now(UTC))
    mark = job.mark()
    copy = create_database(job.server, job.settings, name, mark=mark, like=properties)

    def fill() -> None:
        try:
            fill_and_check(job, dump, copy.url, what=f"the restored copy {copy.name}", hint="")
        except DbopsError as error:
            raise RestoreError(
                f"the in-place restore of {target} failed, so {target} does not exist now; the copy is "
                f"kept as {copy.name}, closed to the application",
                detail=error.message,
                hint=f"restore another backup (dbops restore --mode in-place --target {target}), or "
                f"inspect {copy.name} and, if it will do, rename it to {target} yourself",
            ) from None

    engine = make_engine(job.server, job.settings, purpose="restore in place")
    try:
        rebuild(
            engine,
            target_name=target,
            target=Database(target, target_oid) if target_oid is not None else None,
            properties=properties,
            copy=Database(copy.name, copy.oid),
            copy_mark=mark,
            fill=fill,
            guard=guard,
            log=job.log,
        )
    except BaseException:
        if target_oid is not None and live_oid(job.server, job.settings, target) == target_oid:
            drop_created(copy, job.settings, logger=job.log)  # the target stands: the empty copy goes
        raise
    finally:
        engine.dispose()


def _grant(engine: Engine, name: str, properties: DatabaseProperties) -> None:
    """Give *name* the replaced database's owner, ACL, settings and connection limit."""
    with engine.begin() as connection:
        for statement in granting_statements(name, properties):
            connection.exec_driver_sql(statement)
