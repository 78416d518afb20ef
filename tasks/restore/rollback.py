"""Undo a swap restore: put back exactly the database that swap set aside, on an operator's word.

The swap marked the database it set aside (``COMMENT ON DATABASE``) with the target it replaced and
when. Rollback trusts only that mark, never a name that merely looks like a set-aside copy's, and it
asks for the target's name again, as a restore does.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import text

from models.errors import RestoreRefusedError
from models.marks import DatabaseMark, MarkKind
from models.rehearsal import RollbackResult
from models.settings import Settings
from tasks.postgres.engine import database_url, make_engine, open_connection
from tasks.postgres.guard import maintenance_guard
from tasks.restore.marks import marked_databases
from tasks.restore.swap import database_exists, replace
from tasks.restore.target import derived_name, run_id

_log = logging.getLogger(__name__)
_COMMENT = text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :name")


def rollback(
    settings: Settings,
    target: str,
    *,
    confirm: str | None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> RollbackResult:
    """Swap *target* back with the newest database a swap restore of it set aside."""
    log = logger or _log
    if confirm != target:
        raise RestoreRefusedError(
            f"rolling {target} back needs --confirm {target}; nothing was done",
            hint="repeat the target database's name exactly, to show which database you mean to replace",
        )
    server = database_url(settings).set(database="postgres")
    with maintenance_guard(server, settings, target, "rollback", logger=log):
        engine = make_engine(server, settings, purpose="restore rollback")
        try:
            with open_connection(engine, autocommit=True) as connection:
                set_aside = [
                    found
                    for found in marked_databases(connection)
                    if found.mark.kind is MarkKind.SET_ASIDE and found.mark.target == target
                ]
                if not set_aside or not database_exists(connection, target):
                    raise RestoreRefusedError(
                        f"there is nothing to roll back for {target}: "
                        + (
                            "no swap restore set a database aside for it"
                            if not set_aside
                            else "it does not exist"
                        ),
                        hint="dbops status lists the databases dbops made on this server",
                    )
                newest = max(set_aside, key=lambda found: found.mark.created)
                current = connection.execute(_COMMENT, {"name": target}).scalar()
            now = datetime.now(UTC)
            moved = derived_name(target, "_rolled_back", now)
            gone = DatabaseMark(
                kind=MarkKind.ROLLED_BACK,
                run=run_id(),
                created=now,
                target=target,
                backup=newest.mark.backup,
                comment=current,
            )
            replace(
                engine,
                target=target,
                replacement=newest.name,
                moved_to=moved,
                comments={target: newest.mark.comment, moved: gone.render()},
                log=log,
            )
        finally:
            engine.dispose()
    age = now - newest.mark.created
    log.info(
        "rolled %s back to %s (set aside %s ago); the restored copy is kept as %s",
        target,
        newest.name,
        age,
        moved,
    )
    return RollbackResult(
        target=target, restored_from=newest.name, set_aside_as=moved, set_aside_at=newest.mark.created
    )
