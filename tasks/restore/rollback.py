"""Undo a swap restore: put back exactly the database that swap set aside, on an operator's word.

The swap marked the database it set aside (``COMMENT ON DATABASE``) with the target it replaced, when,
and the OID of the database it put in the target's place. Rollback trusts only that mark, never a
name that merely looks like a set-aside copy's, and it asks for the target's name again, as a
restore does. It puts a set-aside database back only while the target is still the one that
swap put in, and only if no rollback came after that swap: so a second rollback, say from a
double-submitted deployment, changes nothing instead of putting back an even older database.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

from models.errors import RestoreRefusedError
from models.marks import DatabaseMark, MarkKind, Sequence
from models.rehearsal import RollbackResult
from models.settings import Settings
from tasks.postgres.engine import database_url, make_engine, open_connection
from tasks.postgres.guard import maintenance_guard
from tasks.restore.journal import Database, Exchange, exchange
from tasks.restore.marks import MarkedDatabase, marked_databases
from tasks.restore.preflight import check_blockers
from tasks.restore.runs import hold_run, run_id
from tasks.restore.target import derived_name

_log = logging.getLogger(__name__)
_TARGET = text(
    "SELECT oid::bigint, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :name"
)


def rollback(
    settings: Settings,
    target: str,
    *,
    confirm: str | None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> RollbackResult:
    """Swap *target* back with the database the last swap restore of it set aside."""
    log = logger or _log
    if confirm != target:
        raise RestoreRefusedError(
            f"rolling {target} back needs --confirm {target}; nothing was done",
            hint="repeat the target database's name exactly, to show which database you mean to replace",
        )
    server = database_url(settings).set(database="postgres")
    run = run_id()
    with (
        hold_run(server, settings, run),
        maintenance_guard(server, settings, target, "rollback", logger=log) as guard,
    ):
        engine = make_engine(server, settings, purpose="restore rollback")
        try:
            with open_connection(engine) as connection:
                newest, target_oid, current = _choose(connection, target)
                check_blockers(connection, target)
            now = datetime.now(UTC)
            moved = derived_name(target, "_rolled_back", now)
            gone = DatabaseMark(
                kind=MarkKind.ROLLED_BACK,
                run=run,
                created=now,
                target=target,
                backup=newest.mark.backup,
                comment=current,
            )
            exchange(
                engine,
                Exchange(
                    sequence=Sequence.ROLLBACK,
                    target=Database(target, target_oid),
                    replacement=Database(newest.name, newest.oid),
                    replacement_mark=newest.mark,
                    run=run,
                    moved_to=moved,
                    moved_mark=gone,
                    target_comment=newest.mark.comment,
                ),
                guard,
                log,
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
        target=target, restored_from=newest.name, set_aside_at=newest.mark.created, set_aside_as=moved
    )


def _choose(connection: Connection, target: str) -> tuple[MarkedDatabase, int, str | None]:
    """The set-aside database to put back, the target's OID and its comment; refuses (exit 2, nothing
    done) when there is none, when a rollback already came after the last swap, or when the target
    is no longer the database that swap put in."""
    marked = [found for found in marked_databases(connection) if found.mark.target == target]
    set_aside = [found for found in marked if found.mark.kind is MarkKind.SET_ASIDE]
    row = connection.execute(_TARGET, {"name": target}).first()
    if not set_aside or row is None:
        raise RestoreRefusedError(
            f"there is nothing to roll back for {target}: "
            + ("no swap restore set a database aside for it" if not set_aside else "it does not exist"),
            hint="dbops status lists the databases dbops made on this server",
        )
    newest = max(set_aside, key=lambda found: found.mark.created)
    rolled = [found for found in marked if found.mark.kind is MarkKind.ROLLED_BACK]
    last_rollback = max(rolled, key=lambda found: found.mark.created, default=None)
    if last_rollback is not None and last_rollback.mark.created > newest.mark.created:
        raise RestoreRefusedError(
            f"{target} was already rolled back at {last_rollback.mark.created:%Y-%m-%d %H:%M:%S} UTC "
            f"(the restored copy is kept as {last_rollback.name}); rolling back again would put back "
            "the database from before an earlier restore, so nothing was done",
            hint=f"to go back further, restore the backup you want: dbops restore --target {target}",
        )
    target_oid = int(row[0])
    swapped_in = newest.mark.swapped_in_oid
    if swapped_in is not None and swapped_in != target_oid:
        raise RestoreRefusedError(
            f"{target} is no longer the database the restore of {newest.mark.created:%Y-%m-%d %H:%M:%S} "
            f"UTC put in (OID {target_oid}, not {swapped_in}), so putting back {newest.name} would undo "
            "something else; nothing was done",
            hint="dbops status lists the databases dbops made on this server; rename one back by hand "
            "only after checking what each holds",
        )
    return newest, target_oid, None if row[1] is None else str(row[1])
