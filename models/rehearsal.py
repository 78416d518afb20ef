"""The record of a restore rehearsal: proof (or disproof) that a backup restores, and how long it took.

Stored beside the backup as ``rehearsal.json`` (the latest rehearsal of it), so ``dbops backups`` can
show which backups are proven restorable and their measured recovery time.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class PhaseTimings(BaseModel):
    """Seconds per phase; ``total`` is the measured recovery time, from the first byte read to a
    validated database."""

    download: float = 0.0
    restore: float = 0.0
    migrate: float = 0.0
    validation: float = 0.0
    total: float = 0.0


class CountMismatch(BaseModel):
    table: str
    manifest: int | None
    restored: int | None


class RehearsalRecord(BaseModel):
    backup_id: str
    rehearsed_at: datetime
    passed: bool
    failure: str | None = Field(default=None, description="What failed, on one line; None when passed.")
    server: str = Field(description="Where the scratch database lived (host:port).")
    scratch_database: str | None = None
    scratch_kept: bool = False
    backup_revision: str | None
    migrated_to: str | None = None
    pg_restore_version: str | None = None
    jobs: int
    stored_bytes: int
    archive_bytes: int = 0
    restored_database_bytes: int = 0
    timings: PhaseTimings = Field(default_factory=PhaseTimings)
    count_mismatches: list[CountMismatch] = Field(default_factory=list)
    validation_errors: list[str] = Field(default_factory=list)
