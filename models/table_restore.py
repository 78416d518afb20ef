"""Table-level restores as data: what was asked, what the inspection schema holds, what a merge did.

A table restore brings chosen tables' rows out of a backup into a new schema of the live database,
for a person to look at, and optionally merges the rows the live tables lack back into them. The
counts per table are the whole story an operator needs: how many rows the schema holds, how many
a merge inserts (missing from the live table), how many it finds already there, and how many it
replaced (only with ``replace``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class TableRestoreRequest(BaseModel):
    """What the operator asked for, from the command line or the flow's form."""

    backup_id: str = "latest"
    tables: list[str]
    where: str | None = Field(default=None, description="A boolean SQL expression over a table's columns.")
    into_schema: str
    merge: bool = False
    replace: bool = False
    from_database: str | None = Field(
        default=None, description="Restore from a backup of this database; None: the live database's own."
    )


class MergeCounts(BaseModel):
    """What a merge of one table did (or, before it runs, would do)."""

    inserted: int = Field(
        description="Rows the live table lacked (by primary key), inserted from the schema."
    )
    already_present: int = Field(description="Rows whose primary key the live table already had.")
    replaced: int = Field(
        default=0, description="Of those, rows whose content differed and were updated from the backup."
    )


class RestoredTable(BaseModel):
    table: str
    backup_rows: int = Field(description="The table's rows in the backup, as its manifest counted them.")
    rows: int = Field(description="Rows restored into the inspection schema (after the filter, if any).")
    filtered: bool = Field(description="Whether --where applied to this table.")
    unfiltered_because: str | None = Field(
        default=None, description="Why --where did not apply (the table lacks a column it uses)."
    )
    missing: int | None = Field(
        default=None,
        description="Rows of the schema whose primary key the live table lacks: a merge inserts them.",
    )
    present: int | None = Field(default=None, description="Rows of the schema whose primary key is live.")
    differing: int | None = Field(
        default=None, description="Of those, rows whose content differs: a merge with replace updates them."
    )
    merged: MergeCounts | None = Field(default=None, description="What the merge did; None before one ran.")


class TableRestoreResult(BaseModel):
    backup_id: str
    backup_finished_at: datetime = Field(description="When the backup was taken (its dump finished).")
    database: str = Field(description="The live database's name.")
    server: str = Field(description="Its server, host:port.")
    schema_name: str = Field(description="The new schema holding the restored rows.")
    where: str | None = None
    tables: list[RestoredTable] = Field(
        description="In merge order: parents before the tables referencing them."
    )
    merged: bool = False
    replace: bool = False
    restored_at: datetime
    restore_seconds: float = 0.0
    merge_seconds: float = 0.0

    def report_rows(self) -> list[dict[str, object]]:
        """One row per table, as the command line prints it and the flow publishes it: before a merge,
        what it would do (rows missing from the live table, present, and present but different);
        after one, what it did."""
        rows: list[dict[str, object]] = []
        for table in self.tables:
            row: dict[str, object] = {
                "table": table.table,
                "in backup": table.backup_rows,
                "in schema": table.rows,
                "filter": self.filter_of(table),
            }
            if table.merged is not None:
                row |= {
                    "inserted": table.merged.inserted,
                    "already present": table.merged.already_present,
                    "replaced": table.merged.replaced,
                }
            else:
                row |= {
                    "would insert": table.missing,
                    "already present": table.present,
                    "differ": table.differing,
                }
            rows.append(row)
        return rows

    def filter_of(self, table: RestoredTable) -> str:
        """How --where applied to *table*: ``none``, ``--where``, or ``none: <why not>``."""
        if self.where is None:
            return "none"
        if table.filtered:
            return "--where"
        return f"none: {table.unfiltered_because or 'does not apply'}"

    def merge_counts(self) -> dict[str, dict[str, int]]:
        """Per table, what the merge did, as the event feed carries it."""
        return {table.table: table.merged.model_dump() for table in self.tables if table.merged is not None}
