"""Restores as data: the rehearsal record, the operator restore's result, and what they share.

A rehearsal record is stored beside the backup as ``rehearsal.json`` (the latest rehearsal of it),
so ``dbops backups`` can show which backups are proven restorable and their measured recovery time.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AliasChoices, BaseModel, Field

from models.plan import RevisionTrace


class PhaseTimings(BaseModel):
    """Seconds per phase; ``total`` is the measured recovery time, from the first byte read to a
    validated database.

    ``restore`` is made of ``pre_data``, ``data`` and ``post_data`` (a single-object backup's one
    pg_restore is all ``data``); ``early_checks`` ran during ``post_data``, beside it, on the tables
    whose data was in. Records written before those were measured read them as 0.
    """

    prepare: float = Field(
        default=0.0, description="Choosing and vetting the backup, the sweep, creating the scratch database."
    )
    download: float = 0.0
    restore: float = 0.0
    pre_data: float = 0.0
    data: float = 0.0
    post_data: float = 0.0
    early_indexes: float = Field(
        default=0.0,
        description="Index builds of the tables of data parts that ended while others still streamed "
        "(within ``data``).",
    )
    early_checks: float = Field(
        default=0.0, description="Row counts and data checks run while post-data built the indexes."
    )
    counts: float = Field(default=0.0, description="Comparing the rows with the manifest, after the restore.")
    migrate: float = 0.0
    validation: float = 0.0
    drop: float = Field(default=0.0, description="Dropping the scratch database and recording the outcome.")
    total: float = 0.0


class CountMismatch(BaseModel):
    table: str
    manifest: int | None
    restored: int | None


class RestoredCopy(BaseModel):
    """What restoring a backup into a database produced, whether for a rehearsal or for real."""

    backup_id: str
    passed: bool = False
    failure: str | None = Field(default=None, description="What failed, on one line; None when passed.")
    server: str = Field(description="The server restored into (host:port).")
    backup_revision: str | None
    migrated_to: str | None = None
    pg_restore_version: str | None = None
    jobs: int
    stored_bytes: int
    dump_bytes: int = Field(
        default=0,
        # Records written before the backup's file was called a dump name it archive_bytes.
        validation_alias=AliasChoices("dump_bytes", "archive_bytes"),
        description="Size of the unpacked pg_dump output the restore read.",
    )
    restored_database_bytes: int = 0
    timings: PhaseTimings = Field(default_factory=PhaseTimings)
    count_mismatches: list[CountMismatch] = Field(default_factory=list)
    validation_errors: list[str] = Field(default_factory=list)


class RehearsalRecord(RestoredCopy):
    rehearsed_at: datetime
    database: str | None = Field(
        default=None, description="The database the backup was taken from; None in early records."
    )
    scratch_database: str | None = None
    scratch_kept: bool = False
    pending_revisions: list[RevisionTrace] = Field(
        default_factory=list,
        description="When the code's head was ahead of the backup: each pending revision as the tracer "
        "measured it on the scratch copy, judged against the plan's limits (dbops migrate --plan).",
    )


class RestoreMode(StrEnum):
    SWAP = "swap"
    IN_PLACE = "in-place"


class RestoreResult(RestoredCopy):
    target: str
    mode: RestoreMode
    restored_at: datetime
    previous_database: str | None = Field(
        default=None, description="Swap mode: where the replaced database was set aside, for rollback."
    )
    reseeded: bool = False


class RollbackResult(BaseModel):
    target: str
    restored_from: str = Field(description="The set-aside database that is the target again.")
    set_aside_as: str = Field(description="Where the database that was the target now lives.")
    set_aside_at: datetime | None = Field(
        default=None, description="When the swap set aside what is the target again: how old it is."
    )


class TableComparison(BaseModel):
    """One table's rows in the restored copy against the live database it would replace."""

    table: str
    copy_rows: int | None = Field(description="None: the table is not in the backup.")
    live_rows: int | None = Field(description="None: the live database has no such table.")

    @property
    def difference(self) -> int | None:
        if self.copy_rows is None or self.live_rows is None:
            return None
        return self.copy_rows - self.live_rows


class RestoreSummary(BaseModel):
    """What an operator approves: which backup, how proven, and what the copy holds against the live
    database. Shown on a terminal and on the paused flow run's page."""

    target: str
    server: str
    mode: RestoreMode
    backup_id: str
    taken_at: datetime
    source: str = Field(description="The database the backup was taken from, as ``name on host:port``.")
    revision: str | None
    rehearsal: RehearsalRecord | None = Field(description="The backup's latest rehearsal, if any.")
    copy_database: str | None = Field(description="The restored, checked copy; None in-place (built later).")
    copy_bytes: int | None
    live_bytes: int | None
    tables: list[TableComparison]
    #: Where the copy's counts come from: the checked copy, or (in-place) the backup's manifest.
    counted_in: str
