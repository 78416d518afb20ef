"""The mark dbops leaves on every database it creates: what it is, which run made it, and when.

Written as the database's comment (``COMMENT ON DATABASE``), so it lives in the server's catalogue
beside the database itself, survives the crash of the run that made it, and travels with renames. The
crash sweep and the rollback rely on the mark, never on a name pattern alone: a database someone
named like a scratch copy is not one unless dbops marked it.

Pure: no I/O.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field, ValidationError

PREFIX = "dbops: "


class Sequence(StrEnum):
    """The journaled sequences that change a live database (:mod:`tasks.restore.journal`)."""

    SWAP = "swap"  # a restore's copy takes the target's place, the target is set aside
    ROLLBACK = "rollback"  # a set-aside database takes the target's place again
    IN_PLACE = "in-place"  # the target is dropped and rebuilt from the backup


class Journal(BaseModel):
    """The intent of a sequence in progress, written before each step that changes a live database.

    It rides on the mark of the database the sequence puts in place (until the renames) and then on
    the mark of the one it moved aside, so a kill at any instruction leaves a record that says which
    databases take part, by name and OID, and how far the sequence got.
    """

    sequence: Sequence
    run: str = Field(description="The run taking the steps; the sequence is interrupted once it is gone.")
    step: str = Field(description="The step about to be taken, or last taken.")
    target: str
    target_oid: int | None = Field(default=None, description="The live database being replaced, if any.")
    replacement_oid: int = Field(description="The database put in the target's place.")
    moved_to: str | None = Field(default=None, description="The name the replaced database gets.")
    since: datetime
    properties: dict[str, object] | None = Field(
        default=None,
        description="In place: the dropped target's own properties (owner, ACL, settings, comment), "
        "for the replacement once it is checked.",
    )


class MarkKind(StrEnum):
    SCRATCH = "scratch"  # a rehearsal's copy, dropped when the rehearsal ends
    RESTORING = "restoring"  # a restore's copy under construction, swapped in or dropped
    SET_ASIDE = "set-aside"  # the database a swap replaced, kept for rollback
    ROLLED_BACK = "rolled-back"  # the restored copy a rollback replaced
    FAILED = "failed-in-place"  # an in-place restore's copy that failed its checks, kept for a person


class DatabaseMark(BaseModel):
    kind: MarkKind
    run: str = Field(description="host:pid:token of the dbops run that made it")
    created: datetime
    target: str | None = Field(default=None, description="The database it stands in for, or stood in.")
    backup: str | None = None
    comment: str | None = Field(
        default=None, description="The database's own comment, put back if it becomes the target again."
    )
    held_until: datetime | None = Field(
        default=None,
        description="A restoring copy awaiting an operator's approval, and so without sessions, is not "
        "a killed run's before this moment.",
    )
    swapped_in_oid: int | None = Field(
        default=None,
        description="Set aside: the OID of the database the swap put in the target's place. Rollback "
        "puts this one back only while the target is still that database.",
    )
    journal: Journal | None = None

    def render(self) -> str:
        return PREFIX + self.model_dump_json(exclude_none=True)


class DbopsDatabase(BaseModel):
    """A database dbops made, as ``dbops status`` lists it and the sweep reports it."""

    name: str
    kind: MarkKind
    target: str | None
    backup: str | None
    run: str
    created: datetime
    bytes: int
    sessions: int
    alive: bool = Field(default=False, description="Whether the run that made it still holds its lock.")
    interrupted: str | None = Field(
        default=None, description="The step a sequence of a run that is gone stopped at, if any."
    )


class SweepReport(BaseModel):
    """What a sweep of a killed run's leftovers did, and what it left for a person."""

    recovered: list[str] = Field(
        default_factory=list, description="Interrupted sequences finished or undone, one line each."
    )
    dropped: list[DbopsDatabase] = Field(default_factory=list)
    removed_directories: list[str] = Field(default_factory=list)
    left: list[str] = Field(default_factory=list, description="What was not dropped, and why.")


def parse_mark(comment: str | None) -> DatabaseMark | None:
    """The mark in a database comment; None for a comment dbops did not write."""
    if not comment or not comment.startswith(PREFIX):
        return None
    try:
        return DatabaseMark.model_validate(json.loads(comment[len(PREFIX) :]))
    except (ValueError, ValidationError):
        return None
