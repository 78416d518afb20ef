"""Recovery: finish or undo the journaled sequence a kill interrupted (:mod:`tasks.restore.journal`
has the steps and, for each, what is done here).

Recovery decides from the catalogue as it is, not from the step alone: whether the target still is
the database the sequence found (same OID), and whether the renames happened (the intent is on the
database moved aside rather than on the replacement). So a kill between recording a step and taking
it, or between taking it and recording the next, is handled the same way.

It runs wherever a job first meets a database: every job that takes its guard, the sweep (for the
other databases whose guards are free), and ``dbops status``. A live run's sequence is never
touched: its run still holds its lock.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, Engine

from models.errors import DbopsError, RestoreError
from models.marks import MarkKind, Sequence
from models.settings import Settings
from tasks.postgres.engine import make_engine, open_connection, quote_identifier
from tasks.postgres.guard import Guard, try_guard
from tasks.restore.journal import Database, clear_intent, finish_rebuild, keep_failed, undo_exchange
from tasks.restore.marks import MarkedDatabase, marked_databases
from tasks.restore.properties import DatabaseProperties
from tasks.restore.swap import allows_connections, reopen

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
_log = logging.getLogger(__name__)
_OID = text("SELECT oid::bigint FROM pg_database WHERE datname = :name")


def interrupted(connection: Connection, target: str | None = None) -> list[MarkedDatabase]:
    """The databases carrying the intent of a sequence whose run is gone (of *target*, or all)."""
    return [
        found
        for found in marked_databases(connection)
        if found.interrupted
        and found.mark.kind is not MarkKind.FAILED
        and (target is None or (found.mark.journal is not None and found.mark.journal.target == target))
    ]


class Action(StrEnum):
    UNDO = "undo"  # the target stands as it was: reopen what was closed, clear the intent
    FINISH = "finish"  # the renames happened, or the checked copy waits for the target's name
    RESTORE_AGAIN = "restore again"  # the target was dropped before its copy was checked
    LEAVE = "leave"  # the target's name belongs to another database now: for a person


def next_action(found: MarkedDatabase, target_oid: int | None) -> tuple[Action, str]:
    """What recovery does about *found*'s interrupted sequence, given the target's OID now, and the
    words for it."""
    journal = found.mark.journal
    assert journal is not None
    target, name = journal.target, found.name
    if journal.sequence is Sequence.IN_PLACE:
        if target_oid is not None and target_oid == journal.target_oid:
            return Action.UNDO, f"undo: reopen {target} and drop the copy {name}, not yet filled"
        if target_oid is not None:
            return Action.LEAVE, f"leave {name} for a person: {target} is another database now"
        if journal.step in ("grant", "rename"):
            return Action.FINISH, f"finish: give the checked copy {name} the name {target}"
        return (
            Action.RESTORE_AGAIN,
            f"finish: drop the unchecked copy {name} and restore backup {found.mark.backup} into "
            f"{target} again",
        )
    if found.oid == journal.replacement_oid and name != target:
        return Action.UNDO, f"undo: reopen {target} and {name}, as before the {journal.sequence.value}"
    return Action.FINISH, f"finish: reopen {target} and {name}, the {journal.sequence.value} is done"


def recover_interrupted(
    server: URL, settings: Settings, guard: Guard, log: Logger | None = None
) -> list[str]:
    """Finish or undo every interrupted sequence on *guard*'s database (whose guard the caller holds);
    one line each, logged, of what was found and done."""
    log = log or _log
    engine = make_engine(server, settings, purpose="recovery")
    lines: list[str] = []
    try:
        with open_connection(engine, autocommit=True) as connection:
            for found in interrupted(connection, guard.database):
                lines.append(_recover(engine, connection, found, guard, settings, log))
    finally:
        engine.dispose()
    return lines


def recover_others(server: URL, settings: Settings, held: str | None, log: Logger) -> list[str]:
    """Recover the interrupted sequences of every database but *held* whose guard is free now; a
    database whose guard another job holds is left to that job."""
    engine = make_engine(server, settings, purpose="recovery")
    try:
        with open_connection(engine) as connection:
            targets = {found.mark.journal.target for found in interrupted(connection) if found.mark.journal}
    finally:
        engine.dispose()
    lines = []
    for target in sorted(targets - {held} if held else targets):
        with try_guard(server, settings, target, "recovery") as guard:
            if guard is None:
                log.info("left the interrupted sequence on %s to the job holding its guard", target)
                continue
            lines += recover_interrupted(server, settings, guard, log)
    return lines


def _recover(
    engine: Engine,
    connection: Connection,
    found: MarkedDatabase,
    guard: Guard,
    settings: Settings,
    log: Logger,
) -> str:
    journal = found.mark.journal
    assert journal is not None
    target_oid = _oid(connection, journal.target)
    action, words = next_action(found, target_oid)
    copy = Database(found.name, found.oid)
    in_place = journal.sequence is Sequence.IN_PLACE
    if action is Action.UNDO and in_place:
        reopen(engine, journal.target, log)
        if _oid(connection, found.name) == found.oid:
            connection.execute(text("DROP DATABASE " + quote_identifier(found.name) + " WITH (FORCE)"))
    elif action is Action.UNDO:
        undo_exchange(engine, journal, found.mark.model_copy(update={"journal": None}), log)
    elif action is Action.FINISH and in_place:
        finish_rebuild(engine, journal, copy, log)
    elif action is Action.FINISH:
        reopen(engine, journal.target, log)
        reopen(engine, found.name, log)
        clear_intent(connection, copy, found.mark, log)
    elif action is Action.RESTORE_AGAIN:
        _restore_again(engine, connection, found, guard, settings, log)
    else:
        keep_failed(connection, copy, found.mark, journal, log)
    line = (
        f"found the {journal.sequence.value} of {journal.target} by run {journal.run} stopped before "
        f"'{journal.step}' ({found.name}); did: {words}"
    )
    log.warning("%s", line)
    return line


def _restore_again(
    engine: Engine,
    connection: Connection,
    found: MarkedDatabase,
    guard: Guard,
    settings: Settings,
    log: Logger,
) -> None:
    """The target was dropped and its copy never checked: restore the same backup again. If that
    cannot be done, the copy is kept, marked failed-in-place, and the error says how to restore."""
    from tasks.restore.operator import resume_in_place  # the restore machinery, needed only here

    journal = found.mark.journal
    assert journal is not None
    copy = Database(found.name, found.oid)
    if found.mark.backup is None:
        keep_failed(connection, copy, found.mark, journal, log)
        return
    guard.verify("recovery")
    log.warning(
        "%s was dropped by an in-place restore that died before its copy was checked; restoring backup "
        "%s into it again",
        journal.target,
        found.mark.backup,
    )
    # Only a part of the backup may be in the copy, and there is room for one database: it goes first.
    connection.execute(text("DROP DATABASE IF EXISTS " + quote_identifier(found.name) + " WITH (FORCE)"))
    try:
        resume_in_place(
            settings,
            engine.url,
            backup_id=found.mark.backup,
            target=journal.target,
            properties=DatabaseProperties(**journal.properties) if journal.properties else None,  # type: ignore[arg-type]
            guard=guard,
            logger=log,
        )
    except DbopsError as error:
        raise RestoreError(
            f"{journal.target} does not exist: an in-place restore of backup {found.mark.backup} died after "
            f"dropping it, and restoring that backup again failed",
            detail=error.one_line(),
            hint=f"dbops restore --mode in-place --target {journal.target} --backup {found.mark.backup} "
            f"--confirm {journal.target}, with another backup if that one is the problem",
        ) from None


def state_of(connection: Connection, name: str) -> str:
    """``open``, ``closed`` or ``missing``: what an application trying to connect to *name* meets."""
    allowed = allows_connections(connection, name)
    return "missing" if allowed is None else "open" if allowed else "closed"


def examine(server: URL, settings: Settings, target: str, log: Logger | None = None) -> tuple[str, list[str]]:
    """For ``dbops status``: recover *target*'s interrupted sequences if no job holds its guard, and
    say what was done, or what the job holding the guard will do; then *target*'s state (open,
    closed, missing). Connects to the maintenance database only, so a closed target is no obstacle."""
    log = log or _log
    with try_guard(
        server,
        settings,
        target,
        "status",
    ) as guard:
        if guard is not None:
            lines = [f"recovered: {line}" for line in recover_interrupted(server, settings, guard, log)]
        else:
            lines = []
        engine = make_engine(server, settings, purpose="status")
        try:
            with open_connection(engine) as connection:
                if guard is None:
                    now = _oid(connection, target)
                    lines += [
                        f"interrupted: {found.name}, the {_sequence(found)} of {target}; a dbops job holds "
                        f"its guard now, and the next one will {next_action(found, now)[1]}"
                        for found in interrupted(connection, target)
                    ]
                lines += [
                    f"kept for a person: {found.name}, failed-in-place copy of {target}"
                    for found in marked_databases(connection)
                    if found.mark.kind is MarkKind.FAILED and found.mark.target == target
                ]
                return state_of(connection, target), lines
        finally:
            engine.dispose()


def _sequence(found: MarkedDatabase) -> str:
    return found.mark.journal.sequence.value if found.mark.journal else "sequence"


def _oid(connection: Connection, name: str) -> int | None:
    oid = connection.execute(_OID, {"name": name}).scalar()
    return None if oid is None else int(oid)
