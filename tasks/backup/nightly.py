"""A backup as both front doors take it: a new backup, then the retention policy.

``dbops backup`` and the ``backup`` flow call :func:`back_up`, so the rule that pruning follows only
a completed backup (a failed night never thins out the history) is written once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.engine import URL

from models.backup import BackupRun
from models.settings import Settings
from tasks.backup.catalog import prune
from tasks.backup.dump import backup
from tasks.backup.progress import Progress
from tasks.postgres.guard import maintenance_guard
from tasks.storage import ObjectStore


def back_up(
    url: URL,
    settings: Settings,
    store: ObjectStore,
    *,
    prune_after: bool = True,
    on_progress: Callable[[Progress], None] | None = None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> BackupRun:
    """Take a backup of *url* into *store*; then, unless *prune_after* is false, apply retention.

    Both run under the database's maintenance guard, so a restore typed in a shell waits for them,
    and the backup's sweep knows that any other backup of this database it finds is dead.
    """
    with maintenance_guard(url, settings, url.database or "", "backup", logger=logger) as guard:
        manifest = backup(url, settings, store, logger=logger, on_progress=on_progress, guard=guard)
        retention = (
            prune(store, settings.retention_policy, settings.timezone, logger=logger) if prune_after else None
        )
    return BackupRun(manifest=manifest, retention=retention)
