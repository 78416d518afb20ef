"""Typed results the flows return and the CLI prints; artifacts are built from these."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class MigrationDirection(StrEnum):
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    NONE = "none"


class MigrationResult(BaseModel):
    database: str = Field(description="Database name and server; never the password.")
    target: str
    revision_before: str | None
    revision_after: str | None
    direction: MigrationDirection
    steps: list[str] = Field(default_factory=list, description="Revisions applied, in order.")
    lock_wait_seconds: float
    elapsed_seconds: float


class DriftReport(BaseModel):
    database: str
    revision: str | None
    head: str
    differences: list[str] = Field(default_factory=list)

    @property
    def has_drift(self) -> bool:
        return bool(self.differences)


class TableState(BaseModel):
    name: str
    rows: int
    indexes: int
    total_bytes: int


class SchemaState(BaseModel):
    """What ``dbops status`` shows: where the schema stands and what the tables hold."""

    database: str
    server_version: str
    revision: str | None
    head: str
    tables: list[TableState]

    @property
    def at_head(self) -> bool:
        return self.revision == self.head
