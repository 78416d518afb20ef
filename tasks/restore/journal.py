"""The journaled sequences that change a live database, and the recovery of one a kill interrupted.

A restore's swap, a rollback and an in-place restore close, rename and drop production. The process
running one can die at any instruction (SIGKILL, an OOM kill, a pod eviction), and no ``finally``
block runs then. So, as PostgreSQL does with its write-ahead log, each sequence records its intent
before each step that changes a live database: a :class:`~models.marks.Journal` in the mark of the
database it puts in place, and from the renames on, in the mark of the one it moves aside. Any later
job that takes the database's guard, the sweep and ``dbops status`` read it; when the run that wrote
it is gone (its run lock is free, :mod:`tasks.restore.runs`), they finish or undo the sequence, so
the target is open and holds either its old data or the restored data.

Each step is also a failpoint, ``DBOPS_FAILPOINT=<sequence>.<step>``, killed just before the step.

**swap** (a restore's checked copy R replaces the target T, which is kept as M) and **rollback**
(the set-aside R replaces T, which is kept as M); swap alone starts with ``grant``:

============================  ========================================  ==========================
step                          what it does                              recovery after a kill here
============================  ========================================  ==========================
``grant``                     R gets T's owner, ACL and settings        nothing to undo: T as it was
``journal``                   R's mark records the intent               undo: T as it was
``close-replacement``         R refuses connections, its sessions end   undo: reopen R
``close``                     T refuses connections                     undo: reopen T and R
``end-sessions``              T's sessions and walsenders end           undo: reopen T and R
``rename``                    T -> M and R -> T, with their comments,   finish: reopen T and M
                              M's mark taking over the intent, in one
                              transaction
``reopen``                    T accepts connections                     finish: reopen T and M
``reopen-moved``              M accepts connections                     finish: reopen M
``done``                      M's mark drops the intent                 finish: clear the intent
============================  ========================================  ==========================

**in-place** (T is dropped and R, restored from the backup, takes its name; T's properties ride in
the intent, since T is gone once dropped):

================  ============================================  ========================================
step              what it does                                  recovery after a kill here
================  ============================================  ========================================
``journal``       the empty R's mark records the intent         undo: T as it was; R is dropped
``close``         T refuses connections                         undo: reopen T; R is dropped
``end-sessions``  T's sessions and walsenders end               undo: reopen T; R is dropped
``drop``          T is dropped                                  undo while T is still there; after it,
                                                                as for ``fill``
``fill``          the backup is restored into R and checked     finish: drop R, restore the same backup
                                                                again (:func:`operator.resume_in_place`);
                                                                if that fails, say how, in one line
``grant``         R gets T's properties                         finish: grant, then rename R to T
``rename``        R -> T with T's comment; the intent goes      finish: rename R to T
                  with R's mark
================  ============================================  ========================================

A failure that raises (rather than kills) is handled by the same rules at once: before the renames
everything is reopened and the copy kept; after them, the sequence is finished.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from models.errors import DbopsError, RestoreError
from models.marks import DatabaseMark, Journal, MarkKind, Sequence, parse_mark
from tasks.postgres.engine import open_connection, quote_identifier
from tasks.postgres.failpoints import failpoint
from tasks.postgres.guard import Guard
from tasks.restore.marks import write_mark
from tasks.restore.properties import DatabaseProperties, granting_statements
from tasks.restore.swap import (
    allow_connections,
    end_sessions,
    rename_in_one_transaction,
    reopen,
)

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
_log = logging.getLogger(__name__)
_EXCHANGE = (
    "journal",
    "close-replacement",
    "close",
    "end-sessions",
    "rename",
    "reopen",
    "reopen-moved",
    "done",
)
#: Every step of every sequence, in order; each is a failpoint ``<sequence>.<step>``.
STEPS: dict[Sequence, tuple[str, ...]] = {
    Sequence.SWAP: ("grant", *_EXCHANGE),
    Sequence.ROLLBACK: _EXCHANGE,
    Sequence.IN_PLACE: ("journal", "close", "end-sessions", "drop", "fill", "grant", "rename"),
}
_NAME = text("SELECT datname FROM pg_database WHERE oid = :oid")
_COMMENT = text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE oid = :oid")


@dataclass(frozen=True)
class Database:
    """A database taking part in a sequence, by name and by OID: a name alone could be reused."""

    name: str
    oid: int


@dataclass(frozen=True)
class Exchange:
    """What a swap or a rollback puts where: *replacement* takes *target*'s place, and *target* is
    kept as *moved_to* with *moved_mark*; *target_comment* is the comment the target's name then
    carries (the application's own, never a mark)."""

    sequence: Sequence
    target: Database
    replacement: Database
    replacement_mark: DatabaseMark
    run: str
    moved_to: str
    moved_mark: DatabaseMark
    target_comment: str | None


def exchange(engine: Engine, plan: Exchange, guard: Guard, log: Logger) -> None:
    """Run a swap or a rollback (see the module's table); raises with everything reopened and the
    replacement kept if it fails before the renames."""
    seq = plan.sequence.value
    intent = Journal(
        sequence=plan.sequence,
        run=plan.run,
        step="journal",
        target=plan.target.name,
        target_oid=plan.target.oid,
        replacement_oid=plan.replacement.oid,
        moved_to=plan.moved_to,
        since=datetime.now(UTC),
    )
    replacement, target = plan.replacement, plan.target
    with open_connection(engine, autocommit=True) as connection:
        try:
            _step(connection, seq, "journal", guard, replacement, plan.replacement_mark, intent)
            _step(connection, seq, "close-replacement", guard, replacement, plan.replacement_mark, intent)
            allow_connections(connection, replacement.name, False)
            end_sessions(connection, replacement.name, log, what="the replacement")
            _step(connection, seq, "close", guard, replacement, plan.replacement_mark, intent)
            allow_connections(connection, target.name, False)
            _step(connection, seq, "end-sessions", guard, replacement, plan.replacement_mark, intent)
            end_sessions(connection, target.name, log, what="the target")
            _step(connection, seq, "rename", guard, replacement, plan.replacement_mark, intent)
            moved = plan.moved_mark.model_copy(
                update={"journal": intent.model_copy(update={"step": "reopen"})}
            )
            rename_in_one_transaction(
                engine,
                [(target.name, plan.moved_to), (replacement.name, target.name)],
                {target.name: plan.target_comment, plan.moved_to: moved.render()},
            )
        except BaseException:
            undo_exchange(engine, intent, plan.replacement_mark.model_copy(update={"journal": None}), log)
            raise
        try:
            _finish_exchange(connection, intent, plan.moved_mark, target.oid)
        except BaseException:  # the renames are done: whatever stops us, both names open again
            reopen(engine, target.name, log)
            reopen(engine, plan.moved_to, log)
            raise


def _step(
    connection: Connection,
    sequence: str,
    step: str,
    guard: Guard | None,
    database: Database,
    mark: DatabaseMark,
    intent: Journal,
) -> None:
    """Record *step* as the one about to be taken, then take the failpoint and check the guard."""
    write_mark(
        connection,
        database.name,
        database.oid,
        mark.model_copy(update={"journal": intent.model_copy(update={"step": step})}),
    )
    failpoint(f"{sequence}.{step}")
    if guard is not None:
        guard.verify(f"{sequence}.{step}")


def undo_exchange(engine: Engine, intent: Journal, cleared: DatabaseMark, log: Logger) -> None:
    """Before the renames: the target and the replacement accept connections again, and the
    replacement's mark loses the intent. Never raises: an error is already on its way."""
    reopen(engine, intent.target, log)
    replacement = _name_of(engine, intent.replacement_oid)
    if replacement is None:
        return
    reopen(engine, replacement, log)
    try:
        with open_connection(engine, autocommit=True) as connection:
            write_mark(connection, replacement, intent.replacement_oid, cleared)
    except Exception as error:
        log.error("could not clear the intent from %s's mark: %s", replacement, str(error).splitlines()[0])


def _finish_exchange(
    connection: Connection, intent: Journal, moved_mark: DatabaseMark, moved_oid: int | None
) -> None:
    """After the renames: both databases accept connections, then the intent is cleared."""
    seq = intent.sequence.value
    assert intent.moved_to is not None
    assert moved_oid is not None
    failpoint(f"{seq}.reopen")
    allow_connections(connection, intent.target, True)
    failpoint(f"{seq}.reopen-moved")
    allow_connections(connection, intent.moved_to, True)
    failpoint(f"{seq}.done")
    write_mark(connection, intent.moved_to, moved_oid, moved_mark.model_copy(update={"journal": None}))


def rebuild(
    engine: Engine,
    *,
    target_name: str,
    target: Database | None,
    properties: DatabaseProperties | None,
    copy: Database,
    copy_mark: DatabaseMark,
    fill: Callable[[], None],
    guard: Guard,
    log: Logger,
) -> None:
    """Run an in-place restore (see the module's table): drop *target* (if it exists), *fill* the
    empty *copy*, give it the target's properties and name.

    *fill* restores and checks the copy, raising a :class:`DbopsError` when it fails: the copy is then
    kept, marked failed-in-place, for a person.
    """
    seq = Sequence.IN_PLACE.value
    intent = Journal(
        sequence=Sequence.IN_PLACE,
        run=copy_mark.run,
        step="journal",
        target=target_name,
        target_oid=target.oid if target else None,
        replacement_oid=copy.oid,
        since=datetime.now(UTC),
        properties=asdict(properties) if properties else None,
    )
    with open_connection(engine, autocommit=True) as connection:
        _step(connection, seq, "journal", guard, copy, copy_mark, intent)
        if target is not None:
            try:
                _step(connection, seq, "close", guard, copy, copy_mark, intent)
                allow_connections(connection, target.name, False)
                _step(connection, seq, "end-sessions", guard, copy, copy_mark, intent)
                end_sessions(connection, target.name, log, what="the target")
                _step(connection, seq, "drop", guard, copy, copy_mark, intent)
                connection.exec_driver_sql(f"DROP DATABASE {quote_identifier(target.name)} WITH (FORCE)")
            except BaseException:
                reopen(engine, target.name, log)
                clear_intent(connection, copy, copy_mark, log)
                raise
            log.warning("dropped database %s to restore it in place", target.name)
        # From here on the target is gone and only finishing brings it back: a lost guard no longer
        # stops the sequence.
        _step(connection, seq, "fill", None, copy, copy_mark, intent)
        try:
            fill()
        except DbopsError:
            keep_failed(connection, copy, copy_mark, intent, log)
            raise
        _step(connection, seq, "grant", None, copy, copy_mark, intent)
    finish_rebuild(engine, intent, copy, log)


def finish_rebuild(engine: Engine, intent: Journal, copy: Database, log: Logger) -> None:
    """Grant the copy the recorded properties and give it the target's name; a failure keeps the
    copy, marked failed-in-place, and says what finishes the job by hand."""
    properties = DatabaseProperties(**intent.properties) if intent.properties else None  # type: ignore[arg-type]
    statements = granting_statements(copy.name, properties) if properties else []
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
        failpoint("in-place.rename")
        rename_in_one_transaction(
            engine, [(copy.name, intent.target)], {intent.target: properties.comment if properties else None}
        )
    except DBAPIError as error:
        with open_connection(engine, autocommit=True) as connection:
            mark = _current_mark(connection, copy)
            if mark is not None:
                keep_failed(connection, copy, mark, intent.model_copy(update={"step": "grant"}), log)
        by_hand = "; ".join(
            [
                *statements,
                f"ALTER DATABASE {quote_identifier(copy.name)} RENAME TO {quote_identifier(intent.target)}",
            ]
        )
        raise RestoreError(
            f"the in-place restore of {intent.target} could not give the checked copy {copy.name} the "
            f"target's properties and name; the copy is kept, marked failed-in-place",
            detail=str(error.orig).splitlines()[0] if error.orig is not None else str(error),
            hint=f"as a superuser, run: {by_hand}",
        ) from None


def keep_failed(
    connection: Connection, copy: Database, mark: DatabaseMark, intent: Journal, log: Logger
) -> None:
    """Mark *copy* failed-in-place: never swept, kept for a person, with the intent for the record."""
    failed = mark.model_copy(update={"kind": MarkKind.FAILED, "journal": intent})
    try:
        write_mark(connection, copy.name, copy.oid, failed)
    except DbopsError as error:
        log.error("could not mark %s failed-in-place: %s", copy.name, error.one_line())


def clear_intent(connection: Connection, database: Database, mark: DatabaseMark, log: Logger) -> None:
    try:
        write_mark(connection, database.name, database.oid, mark.model_copy(update={"journal": None}))
    except DbopsError as error:
        log.error("could not clear the intent from %s's mark: %s", database.name, error.one_line())


def _name_of(engine: Engine, oid: int) -> str | None:
    try:
        with open_connection(engine) as connection:
            name = connection.execute(_NAME, {"oid": oid}).scalar()
    except Exception:
        return None
    return None if name is None else str(name)


def _current_mark(connection: Connection, database: Database) -> DatabaseMark | None:
    return parse_mark(connection.execute(_COMMENT, {"oid": database.oid}).scalar())
