"""A running backup makes itself visible in the store: the sweep of incomplete backups run by any
other job, on any machine, leaves it alone while its heartbeat is fresh (:mod:`models.heartbeat`).

:func:`running_backup` first sweeps the store, then writes the backup's marker and keeps it
fresh from a daemon thread until the backup ends. A backup that fails takes what it stored with it,
manifest first, so that a failure is never listed; only then does its marker go, so that whatever
could not be removed is still recognised by the next job of its database as a dead backup's.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from models.backup import BackupSource, backup_folder, manifest_key
from models.errors import DbopsError
from models.heartbeat import BackupHeartbeat, running_key
from models.settings import Settings
from tasks.backup.catalog import remove_incomplete
from tasks.storage import ObjectStore

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class Heartbeat:
    """The marker of one backup, rewritten every ``refresh_seconds`` until :meth:`stop`."""

    def __init__(self, store: ObjectStore, backup_id: str, marker: BackupHeartbeat, log: Logger) -> None:
        self.store, self.key, self.marker, self.log = store, running_key(backup_id), marker, log
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name=f"heartbeat-{backup_id}", daemon=True)

    def start(self) -> None:
        self._write()
        self._thread.start()

    def _write(self) -> None:
        self.marker = self.marker.model_copy(update={"refreshed_at": datetime.now(UTC)})
        self.store.put_bytes(self.key, self.marker.model_dump_json(indent=2).encode())

    def _refresh(self) -> None:
        while not self._stopped.wait(self.marker.refresh_seconds):
            try:
                self._write()
            except DbopsError as error:  # the next rewrite may succeed; several misses are tolerated
                self.log.warning("could not refresh the heartbeat %s: %s", self.key, error.one_line())
            except OSError as error:  # a local store's full disk, say: the thread must go on
                self.log.warning("could not refresh the heartbeat %s: %s", self.key, error)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=60)

    def remove(self) -> None:
        try:
            self.store.delete([self.key])
        except DbopsError as error:
            self.log.warning("could not remove the heartbeat %s: %s", self.key, error.one_line())


@contextmanager
def running_backup(
    store: ObjectStore,
    settings: Settings,
    backup_id: str,
    source: BackupSource,
    *,
    guarded: bool,
    log: Logger,
) -> Iterator[None]:
    """Sweep *store*, then keep *backup_id*'s heartbeat for the block's duration.

    *guarded*: the caller holds the guard of *source*'s database, so the sweep removes that
    database's dead backups at once, and this backup's marker says so for the next sweep.
    """
    remove_incomplete(
        store,
        older_than=settings.backup_incomplete_grace_hours,
        guarded_source=source if guarded else None,
        logger=log,
    )
    now = datetime.now(UTC)
    marker = BackupHeartbeat(
        source=source,
        host=socket.gethostname(),
        pid=os.getpid(),
        guarded=guarded,
        started_at=now,
        refreshed_at=now,
        refresh_seconds=settings.backup_heartbeat_seconds,
    )
    heartbeat = Heartbeat(store, backup_id, marker, log)
    heartbeat.start()
    try:
        yield
    except BaseException:
        heartbeat.stop()
        if remove_failed(store, backup_id, log):
            heartbeat.remove()
        raise
    heartbeat.stop()
    heartbeat.remove()


def remove_failed(store: ObjectStore, backup_id: str, log: Logger) -> bool:
    """Best effort: remove what a failed backup stored, its manifest first (a store that kept the
    manifest without its object lock, say); True when nothing but the marker is left."""
    marker, manifest = running_key(backup_id), manifest_key(backup_id)
    try:
        keys = [found.key for found in store.list_objects(backup_folder(backup_id)) if found.key != marker]
        if manifest in keys:
            try:
                store.delete([manifest])
            except DbopsError as error:
                log.error(
                    "the failed backup %s is listed: its manifest could not be removed (%s); delete %s",
                    backup_id,
                    error.one_line(),
                    manifest,
                )
                return False
        store.delete([key for key in keys if key != manifest])
    except DbopsError as error:
        log.warning(
            "what the failed backup %s stored is left for the next backup of its database (%s)",
            backup_id,
            error.one_line(),
        )
        return False
    return True
