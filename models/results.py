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


class TableChanges(BaseModel):
    table: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


class SeedResult(BaseModel):
    database: str
    seed_file: str
    tables: list[TableChanges]

    @property
    def changed(self) -> bool:
        return any(table.inserted or table.updated for table in self.tables)


class ValidationCheck(BaseModel):
    name: str
    passed: bool
    detail: str
    warning: bool = Field(default=False, description="Passed, but with something a person should look at.")

    @property
    def verdict(self) -> str:
        """``ok``, ``warning`` or ``failed``."""
        return "failed" if not self.passed else "warning" if self.warning else "ok"


class SeedValidationReport(BaseModel):
    database: str
    checks: list[ValidationCheck]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[ValidationCheck]:
        return [check for check in self.checks if not check.passed]


class MigrateAndSeedReport(BaseModel):
    migration: MigrationResult
    seed: SeedResult
    validation: SeedValidationReport


class SynthResult(BaseModel):
    database: str
    seed: int
    rows: dict[str, int]
    elapsed_seconds: float
    already_loaded: bool = Field(default=False, description="Data for this seed was there; nothing loaded.")

    @property
    def rows_per_second(self) -> float:
        return sum(self.rows.values()) / self.elapsed_seconds if self.elapsed_seconds else 0.0
