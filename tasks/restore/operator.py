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
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL

from models.backup import BackupManifest
from models.errors import RestoreError, RestoreRefusedError
from models.rehearsal import RestoredCopy, RestoreMode, RestoreResult, RollbackResult
from models.settings import Environment, Settings
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
from tasks.restore.swap import (
    allow_connections,
    database_exists,
    rename_in_one_transaction,
    swap_in,
    take_offline,
)
from tasks.restore.target import CreatedDatabase, create_database, drop_created
from tasks.storage import ObjectStore

_log = logging.getLogger(__name__)
_MAX_NAME = 63
SET_ASIDE_MARK = "_pre_restore"
_TIMESTAMP = "%Y%m%dt%H%M%S"
_TIMESTAMP_EXAMPLE = "20261127t221500"


def restore(
    settings: Settings,
    store: ObjectStore,
    *,
    backup_id: str,
    target: str,
    confirm: str | None,
    mode: RestoreMode = RestoreMode.SWAP,
    reseed: bool = False,
    validate: Validator | None = None,
    logger: Logger | None = None,
) -> RestoreResult:
    """Restore *backup_id* (or ``latest``) over the database *target* on the configured server.

    Everything that can refuse (confirmation, target, backup, revision, key, checksum) does so before
    the target is touched; raises on any failure, so a returned result is a restored, checked target.
    """
    log = logger or _log
    server = database_url(settings).set(database="postgres")
    _check_request(settings, server, target, confirm, mode, reseed)
    manifest, pg_restore = vet_backup(store, backup_id, settings, server)
    now = datetime.now(UTC)
    result = RestoreResult(
        **copy_basis(manifest, server, pg_restore, settings),
        target=target,
        mode=mode,
        restored_at=now,
        reseeded=reseed,
    )
    started = time.monotonic()
    with work_directory(settings) as directory:
        fetched = fetch_dump(store, manifest, settings, directory, logger=log)
        result.timings.download, result.dump_bytes = fetched.seconds, fetched.dump_bytes
        if mode is RestoreMode.SWAP:
            replacement = create_database(server, settings, _derived_name(target, "_restoring", now))
            _restore_or_drop(
                result, replacement, fetched.path, manifest, settings, pg_restore, reseed, validate, log
            )
            result.previous_database = _derived_name(target, SET_ASIDE_MARK, now)
            try:
                swap_in(
                    server,
                    settings,
                    target=target,
                    replacement=replacement.name,
                    set_aside_as=result.previous_database,
                    logger=log,
                )
            except BaseException:
                drop_created(replacement, settings, logger=log)  # the target kept its name and data
                raise
        else:
            recreated = _recreate(server, settings, target, log)
            _fill_and_check(
                result,
                fetched.path,
                recreated.url,
                manifest,
                settings,
                pg_restore,
                reseed,
                validate,
                log,
                what=f"database {target}, recreated,",
                hint="the target now holds the copy that failed its checks: restore another backup",
            )
    result.timings.total = round(time.monotonic() - started, 3)
    log.info(
        "restored backup %s into %s (%s) in %.1f s",
        manifest.backup_id,
        target,
        mode.value,
        result.timings.total,
    )
    return result


def rollback(settings: Settings, target: str, *, logger: Logger | None = None) -> RollbackResult:
    """Swap *target* back with the newest database a swap restore set aside for it."""
    log = logger or _log
    server = database_url(settings).set(database="postgres")
    engine = make_engine(server, settings, purpose="restore rollback")
    try:
        with open_connection(engine, autocommit=True) as connection:
            stem = _set_aside_prefix(target)
            names = connection.execute(text("SELECT datname FROM pg_database")).scalars()
            set_aside = max((str(name) for name in names if str(name).startswith(stem)), default=None)
            if set_aside is None or not database_exists(connection, target):
                raise RestoreRefusedError(
                    f"there is nothing to roll back for {target}: "
                    + (
                        "no database was set aside by a restore" if set_aside is None else "it does not exist"
                    ),
                    hint="dbops restore --mode swap sets the previous database aside; list them with "
                    f"SELECT datname FROM pg_database WHERE datname LIKE '{target}%'",
                )
            moved = _derived_name(target, "_rolled_back", datetime.now(UTC))
            take_offline(connection, target, log)
            try:
                rename_in_one_transaction(engine, [(target, moved), (str(set_aside), target)])
            except Exception:
                allow_connections(connection, target, True)
                raise
            allow_connections(connection, target, True)
            allow_connections(connection, moved, True)
    finally:
        engine.dispose()
    log.info("rolled %s back to %s; the restored copy is kept as %s", target, set_aside, moved)
    return RollbackResult(target=target, restored_from=str(set_aside), set_aside_as=moved)


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


def _restore_or_drop(
    result: RestoredCopy,
    replacement: CreatedDatabase,
    dump: Path,
    manifest: BackupManifest,
    settings: Settings,
    pg_restore: Program,
    reseed: bool,
    validate: Validator | None,
    log: Logger,
) -> None:
    """Fill the replacement and check it; a replacement that fails is dropped, the target untouched."""
    try:
        _fill_and_check(
            result,
            dump,
            replacement.url,
            manifest,
            settings,
            pg_restore,
            reseed,
            validate,
            log,
            what=f"the restored copy {replacement.name}",
            hint="the target was not replaced; look at the backup with dbops rehearse --backup ID --keep",
        )
    except BaseException:
        drop_created(replacement, settings, logger=log)
        raise


def _fill_and_check(
    result: RestoredCopy,
    dump: Path,
    url: URL,
    manifest: BackupManifest,
    settings: Settings,
    pg_restore: Program,
    reseed: bool,
    validate: Validator | None,
    log: Logger,
    *,
    what: str,
    hint: str,
) -> None:
    """Restore into the empty database at *url* (owners and grants kept: same server), then check it."""
    restore_and_check(
        result,
        dump,
        url,
        manifest,
        settings,
        pg_restore,
        keep_ownership=True,
        validate=validate,
        log=log,
        reseed=reseed,
    )
    if not result.passed:
        raise RestoreError(
            f"{what} failed its checks, so the restore of backup {result.backup_id} stopped",
            detail=result.failure,
            hint=hint,
        )


def _recreate(server: URL, settings: Settings, target: str, log: Logger) -> CreatedDatabase:
    engine = make_engine(server, settings, purpose="restore in place")
    try:
        with open_connection(engine, autocommit=True) as connection:
            if database_exists(connection, target):
                take_offline(connection, target, log)
                connection.exec_driver_sql(f"DROP DATABASE {quote_identifier(target)} WITH (FORCE)")
                log.warning("dropped database %s to restore it in place", target)
    finally:
        engine.dispose()
    return create_database(server, settings, target)


def _set_aside_prefix(target: str) -> str:
    """What every name :func:`restore` sets *target* aside under starts with."""
    return _derived_name(target, SET_ASIDE_MARK, datetime.now(UTC))[: -len(_TIMESTAMP_EXAMPLE)]


def _derived_name(target: str, mark: str, now: datetime) -> str:
    """``<target><mark>_<timestamp>``, the target part shortened to fit PostgreSQL's 63 bytes."""
    suffix = f"{mark}_{now:{_TIMESTAMP}}"
    return target[: _MAX_NAME - len(suffix)] + suffix
