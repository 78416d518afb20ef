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
from models.marks import DatabaseMark, MarkKind
from models.rehearsal import RestoreResult
from models.settings import Settings
from tasks.postgres.binaries import Program
from tasks.postgres.engine import make_engine, open_connection, quote_identifier
from tasks.restore.copy import Logger, Validator, restore_and_check, work_directory
from tasks.restore.parts import FetchedBackup, fetch_backup
from tasks.restore.properties import (
    DatabaseProperties,
    comment_statement,
    granting_statements,
    read_properties,
)
from tasks.restore.swap import database_exists, rename_in_one_transaction, replace, take_offline
from tasks.restore.target import CreatedDatabase, create_database, derived_name, drop_created
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
    engine = make_engine(server, settings, purpose="restore")
    try:
        with open_connection(engine) as connection:
            return read_properties(connection, target)
    finally:
        engine.dispose()


def build_copy(job: RestoreJob, store: ObjectStore) -> CreatedDatabase:
    """Build the copy beside the target and check it; the target is not touched. A copy that fails
    is dropped. The checked copy's mark then holds it for the approval wait, when no session keeps
    the sweep of another run off it."""
    properties = target_properties(job.server, job.settings, job.target)
    name = derived_name(job.target, "_restoring", job.now)
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
        held = datetime.now(UTC) + timedelta(seconds=job.settings.restore_approval_timeout_seconds)
        _comment(job, copy.name, job.mark(held_until=held).render())
    except BaseException:
        drop_created(copy, job.settings, logger=job.log)  # gone only while it is still the copy
        raise
    return copy


def _comment(job: RestoreJob, name: str, comment: str) -> None:
    engine = make_engine(job.server, job.settings, purpose="restore")
    try:
        with open_connection(engine, autocommit=True) as connection:
            connection.exec_driver_sql(comment_statement(name, comment))
    finally:
        engine.dispose()


def swap_in(job: RestoreJob, copy: CreatedDatabase, properties: DatabaseProperties) -> str:
    """Give the checked copy the target's properties, then swap names.

    The replaced database is kept, marked as set aside for :func:`~tasks.restore.rollback.rollback`;
    returns its name. A copy that fails to swap is dropped and the target left as it was.
    """
    set_aside = derived_name(job.target, SET_ASIDE_MARK, job.now)
    engine = make_engine(job.server, job.settings, purpose="restore swap")
    try:
        _grant(engine, copy.name, properties)
        kept = job.mark(kind=MarkKind.SET_ASIDE, comment=properties.comment)
        replace(
            engine,
            target=job.target,
            replacement=copy.name,
            moved_to=set_aside,
            comments={job.target: properties.comment, set_aside: kept.render()},
            log=job.log,
        )
    except BaseException:
        drop_created(copy, job.settings, logger=job.log)  # gone only while it is still the copy
        raise
    finally:
        engine.dispose()
    job.log.info(
        "database %s is now the restored copy; the previous one is kept as %s", job.target, set_aside
    )
    return set_aside


def rebuild_in_place(job: RestoreJob, properties: DatabaseProperties | None, dump: FetchedBackup) -> None:
    """Drop the target, then build the copy under another name and give it the target's name only
    once it is restored, migrated and checked: until then no application can connect to a
    half-filled database. A copy that fails its checks is kept, marked, for a person to look at."""
    target, mark = job.target, job.mark()
    engine = make_engine(job.server, job.settings, purpose="restore in place")
    try:
        with open_connection(engine, autocommit=True) as connection:
            if database_exists(connection, target):
                take_offline(connection, target, job.log)
                connection.exec_driver_sql(f"DROP DATABASE {quote_identifier(target)} WITH (FORCE)")
                job.log.warning("dropped database %s to restore it in place", target)
        name = derived_name(target, "_restoring", job.now)
        copy = create_database(job.server, job.settings, name, mark=mark, like=properties)
        try:
            fill_and_check(job, dump, copy.url, what=f"the restored copy {copy.name}", hint="")
        except DbopsError as error:
            _keep_failed(engine, copy, mark)
            raise RestoreError(
                f"the in-place restore of {target} failed, so {target} does not exist now; the copy is "
                f"kept as {copy.name}, closed to the application",
                detail=error.message,
                hint=f"restore another backup (dbops restore --mode in-place --target {target}), or inspect "
                f"{copy.name} and, if it will do, rename it to {target} yourself",
            ) from None
        if properties is not None:
            _grant(engine, copy.name, properties)
        rename_in_one_transaction(
            engine, [(copy.name, target)], {target: properties.comment if properties else None}
        )
    finally:
        engine.dispose()


def _grant(engine: Engine, name: str, properties: DatabaseProperties) -> None:
    """Give *name* the replaced database's owner, ACL, settings and connection limit."""
    with engine.begin() as connection:
        for statement in granting_statements(name, properties):
            connection.exec_driver_sql(statement)


def _keep_failed(engine: Engine, copy: CreatedDatabase, mark: DatabaseMark) -> None:
    failed = mark.model_copy(update={"kind": MarkKind.FAILED})
    with open_connection(engine, autocommit=True) as connection:
        connection.exec_driver_sql(comment_statement(copy.name, failed.render()))
