"""A scratch copy of the database restored from one of its backups, for measuring on real data.

``dbops migrate --plan`` traces the pending revisions on one and ``dbops review-indexes --verify``
builds the advised indexes on one: both need the rehearsal's machinery (its checks before anything is
created, the run's lock, the guard, the sweep of a dead run's leftovers, streaming and parallel parts)
and a copy that is dropped in every outcome. Production is only read: its identity, to pick its
backups.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import URL

from models.backup import BackupManifest
from models.errors import DbopsError, RestoreRefusedError, ScratchCopyUnavailableError
from models.marks import DatabaseMark, MarkKind
from models.settings import Settings
from tasks.backup.source import database_source
from tasks.postgres.engine import database_url
from tasks.postgres.guard import maintenance_guard
from tasks.restore.copy import vet_backup, work_directory
from tasks.restore.leftovers import sweep
from tasks.restore.parts import fetch_backup
from tasks.restore.runs import hold_run, run_id
from tasks.restore.target import (
    CreatedDatabase,
    create_database,
    drop_created,
    rehearsal_server,
    timestamped_name,
)
from tasks.storage import ObjectStore

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScratchCopy:
    """The restored copy: the backup it came from, the production database it is a copy of, and the
    URL to measure on (the copy's own, never production's)."""

    manifest: BackupManifest
    database: str
    url: URL


@contextmanager
def scratch_copy(
    settings: Settings,
    store: ObjectStore,
    *,
    backup_id: str | None,
    purpose: str,
    measuring: str,
    prefix: str,
    no_backup_hint: str,
    unavailable: type[ScratchCopyUnavailableError] = ScratchCopyUnavailableError,
    source: URL | None = None,
    logger: Logger | None = None,
) -> Iterator[ScratchCopy]:
    """Restore *backup_id* (None: the newest backup of the configured database) into a scratch
    database named ``<prefix>_<time>_<hex>``, yield it, and drop it whatever happens.

    *purpose* names the guard's holder ("migration plan"); *measuring* completes "no backup of DB to
    ..." ("measure the migrations on"), what the operator reads when there is nothing to restore.
    Raises *unavailable* (a :class:`ScratchCopyUnavailableError`) when no backup can be restored:
    none, refused by the checks, or failing to restore. *source* is the database whose backups count
    (None: the configured one).
    """
    log = logger or _log
    server = rehearsal_server(settings)
    wanted = database_source(source or database_url(settings), settings)
    try:
        manifest, pg_restore = vet_backup(store, backup_id, settings, server, wanted=wanted)
    except RestoreRefusedError as error:
        raise unavailable(
            f"no backup of {wanted.database} to {measuring}: {error.message.rstrip('.')}",
            detail=error.detail,
            hint=no_backup_hint,
        ) from None
    run = run_id()
    created: CreatedDatabase | None = None
    with (
        hold_run(server, settings, run),
        maintenance_guard(server, settings, wanted.database, purpose, logger=log),
    ):
        sweep(server, settings, run=run, held=wanted.database, set_aside=False, logger=log)
        try:
            with work_directory(settings, run) as directory:
                fetched = fetch_backup(store, manifest, settings, directory, logger=log)
                mark = DatabaseMark(
                    kind=MarkKind.SCRATCH, run=run, created=datetime.now(UTC), backup=manifest.backup_id
                )
                created = create_database(server, settings, timestamped_name(prefix), mark=mark)
                try:
                    fetched.restore(created.url, pg_restore, settings, keep_ownership=False, log=log)
                except DbopsError as error:
                    raise unavailable(
                        f"backup {manifest.backup_id} did not restore, so nothing was measured",
                        detail=error.one_line(),
                        hint="rehearse it (dbops rehearse --backup ID), or measure on another with --backup",
                    ) from None
            yield ScratchCopy(manifest=manifest, database=wanted.database, url=created.url)
        finally:
            if created is not None:
                drop_created(created, settings, logger=log)
