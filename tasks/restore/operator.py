"""Restore a backup over a live database, on an operator's word, and undo it.

``swap`` (the default) builds the restored copy beside the target, migrates and checks it, and only
then swaps names in one short critical section; the replaced database stays, set aside, for
:func:`rollback`. ``in-place`` drops and recreates the target: for when there is no room for two.
Either way the dump's checksum is verified before anything is touched, and nothing happens
unless ``confirm`` repeats the target's name.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import URL, Engine

from models.backup import BackupManifest, BackupSource
from models.errors import DbopsError, RestoreError, RestoreRefusedError
from models.marks import DatabaseMark, MarkKind
from models.rehearsal import RestoredCopy, RestoreMode, RestoreResult
from models.settings import Environment, Settings
from tasks.backup.dump import database_source
from tasks.postgres.binaries import Program
from tasks.postgres.engine import database_url, make_engine, open_connection, quote_identifier
from tasks.restore.copy import (
    Logger,
    Validator,
    copy_basis,
    restore_and_check,
    vet_backup,
    work_directory,
)
from tasks.restore.fetch import fetch_dump
from tasks.restore.leftovers import sweep
from tasks.restore.properties import (
    DatabaseProperties,
    comment_statement,
    granting_statements,
    read_properties,
)
from tasks.restore.swap import database_exists, rename_in_one_transaction, replace, take_offline
from tasks.restore.target import CreatedDatabase, create_database, derived_name, drop_created, run_id
from tasks.storage import ObjectStore

_log = logging.getLogger(__name__)
_MAX_NAME = 63
SET_ASIDE_MARK = "_pre_restore"


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
) -> RestoreResult:
    """Restore *backup_id* (or ``latest``) over the database *target* on the configured server.

    The backup must come from a database named *target*, or *from_database* when that is given:
    ``latest`` is the newest backup of that database, and a backup of another one is refused.
    Everything that can refuse (confirmation, target, backup, revision, key, checksum) does so before
    the target is touched; raises on any failure, so a returned result is a restored, checked target.
    """
    log = logger or _log
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
    started = time.monotonic()
    run = run_id()
    sweep(server, settings, run=run, logger=log)
    properties = _properties(server, settings, target)
    with work_directory(settings, run) as directory:
        fetched = fetch_dump(store, manifest, settings, directory, logger=log)
        result.timings.download, result.dump_bytes = fetched.seconds, fetched.dump_bytes
        job = _Job(
            server,
            settings,
            target,
            manifest,
            run,
            now,
            fetched.path,
            result,
            pg_restore,
            reseed,
            validate,
            log,
        )
        if mode is RestoreMode.SWAP:
            assert properties is not None  # a swap target exists (checked above)
            result.previous_database = _swap(job, properties)
        else:
            _in_place(job, properties)
    result.timings.total = round(time.monotonic() - started, 3)
    log.info(
        "restored backup %s into %s (%s) in %.1f s",
        manifest.backup_id,
        target,
        mode.value,
        result.timings.total,
    )
    return result


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


@dataclass(frozen=True)
class _Job:
    """One restore, as its steps share it."""

    server: URL
    settings: Settings
    target: str
    manifest: BackupManifest
    run: str
    now: datetime
    dump: Path
    result: RestoredCopy
    pg_restore: Program
    reseed: bool
    validate: Validator | None
    log: Logger

    def mark(self) -> DatabaseMark:
        return DatabaseMark(
            kind=MarkKind.RESTORING,
            run=self.run,
            created=self.now,
            target=self.target,
            backup=self.manifest.backup_id,
        )


def _fill_and_check(job: _Job, url: URL, *, what: str, hint: str) -> None:
    """Restore into the empty database at *url* (owners and grants kept: same server), then check it."""
    restore_and_check(
        job.result,
        job.dump,
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


def _properties(server: URL, settings: Settings, target: str) -> DatabaseProperties | None:
    engine = make_engine(server, settings, purpose="restore")
    try:
        with open_connection(engine) as connection:
            return read_properties(connection, target)
    finally:
        engine.dispose()


def _swap(job: _Job, properties: DatabaseProperties) -> str:
    """Build the copy beside the target, check it, give it the target's properties, then swap names.

    The replaced database is kept, marked as set aside for :func:`~tasks.restore.rollback.rollback`;
    returns its name. A copy that fails is dropped and the target never touched.
    """
    mark = job.mark()
    name = derived_name(job.target, "_restoring", job.now)
    replacement = create_database(job.server, job.settings, name, mark=mark, like=properties)
    set_aside = derived_name(job.target, SET_ASIDE_MARK, job.now)
    engine = make_engine(job.server, job.settings, purpose="restore swap")
    try:
        _fill_and_check(
            job,
            replacement.url,
            what=f"the restored copy {replacement.name}",
            hint="the target was not replaced; look at the backup with dbops rehearse --backup ID --keep",
        )
        _grant(engine, replacement.name, properties)
        kept = mark.model_copy(update={"kind": MarkKind.SET_ASIDE, "comment": properties.comment})
        replace(
            engine,
            target=job.target,
            replacement=replacement.name,
            moved_to=set_aside,
            comments={job.target: properties.comment, set_aside: kept.render()},
            log=job.log,
        )
    except BaseException:
        drop_created(replacement, job.settings, logger=job.log)  # gone only while it is still the copy
        raise
    finally:
        engine.dispose()
    job.log.info(
        "database %s is now the restored copy; the previous one is kept as %s", job.target, set_aside
    )
    return set_aside


def _in_place(job: _Job, properties: DatabaseProperties | None) -> None:
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
            _fill_and_check(job, copy.url, what=f"the restored copy {copy.name}", hint="")
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
