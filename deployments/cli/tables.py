"""``dbops restore-tables``: chosen tables' rows from a backup into a new schema, and optionally merged
back into the live tables."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from flows.events import tables_merged, tables_rejected
from models.errors import ConfigurationError, RestoreRejectedError
from models.settings import load_settings
from models.table_restore import TableRestoreRequest, TableRestoreResult
from tasks.restore.tables.restore import merge_into_live, restore_into_schema, restore_tables
from tasks.storage import open_store


def register(app: typer.Typer) -> None:
    app.command("restore-tables")(restore_tables_command)


def restore_tables_command(
    tables: Annotated[
        list[str],
        typer.Option(
            "--table", metavar="TABLE", help="A table to restore; repeat for more (parents merge first)."
        ),
    ],
    into_schema: Annotated[
        str,
        typer.Option("--into-schema", metavar="NAME", help="A new schema of the live database for the rows."),
    ],
    backup: Annotated[
        str, typer.Option("--backup", metavar="ID", help="The backup to read, or latest.")
    ] = "latest",
    where: Annotated[
        str | None,
        typer.Option(
            "--where",
            metavar="SQL",
            help="Keep only rows matching this condition, in each table that has its columns.",
        ),
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Then insert the rows the live tables lack, in one transaction.")
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="With --merge: also update live rows whose content differs.")
    ] = False,
    from_database: Annotated[
        str | None,
        typer.Option("--from-database", metavar="NAME", help="Read a backup of database NAME instead."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="Merge without asking: needed for --merge without a terminal."),
    ] = False,
) -> None:
    """Restore chosen tables' rows from a backup into a new schema; --merge inserts the missing ones.

    With --merge on a terminal, the report of what the merge would do comes first, and the merge
    waits for the live database's name to be typed, as ``dbops restore`` does.
    """
    settings = load_settings()
    asking = merge and not yes
    if asking and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise ConfigurationError(
            "dbops restore-tables --merge without a terminal needs --yes; nothing was done",
            hint="on a terminal it shows what the merge would do and asks; a script must say --yes",
        )
    request = TableRestoreRequest(
        backup_id=backup,
        tables=tables,
        where=where,
        into_schema=into_schema,
        merge=merge,
        replace=replace,
        from_database=from_database,
    )
    if asking:
        result = restore_into_schema(settings, open_store(settings), request)
        for line in summary(result):
            typer.echo(line)
        answer = typer.prompt(
            f"type {result.database} to merge these rows into it (anything else merges nothing)",
            default="",
            show_default=False,
        )
        if answer.strip() != result.database:
            tables_rejected(result.database, result.backup_id, result.schema_name, "rejected on the terminal")
            raise RestoreRejectedError(
                f"nothing was merged into {result.database}; the restored rows stay in schema "
                f"{result.schema_name} for inspection",
                hint=f"run again with --merge, or DROP SCHEMA {result.schema_name} CASCADE when done",
            )
        result = merge_into_live(settings, result, replace=replace)
    else:
        result = restore_tables(settings, open_store(settings), request)
    if result.merged:
        tables_merged(result.database, result.backup_id, result.merge_counts())
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    for line in summary(result):
        typer.echo(line)


def summary(result: TableRestoreResult) -> list[str]:
    age = datetime.now(UTC) - result.backup_finished_at
    lines = [
        f"backup {result.backup_id} (taken {result.backup_finished_at:%Y-%m-%d %H:%M} UTC, "
        f"{age.total_seconds() / 3600:,.1f} h ago) into schema {result.schema_name} of {result.database} "
        f"on {result.server}" + (f", where {result.where}" if result.where else ""),
        *_table(result.report_rows()),
    ]
    if result.merged:
        lines.append(
            f"merged in one transaction{' (differing rows replaced)' if result.replace else ''}; "
            f"the restored rows stay in schema {result.schema_name} (DROP SCHEMA {result.schema_name} "
            "CASCADE when done)"
        )
    else:
        lines.append(
            f"nothing merged: the rows are in schema {result.schema_name} for inspection "
            f"(DROP SCHEMA {result.schema_name} CASCADE when done); --merge inserts the missing ones"
        )
    return lines


def _table(rows: list[dict[str, object]]) -> list[str]:
    if not rows:
        return []
    headers = list(rows[0])
    cells = [[_cell(row[header]) for header in headers] for row in rows]
    widths = [max(len(header), *(len(row[index]) for row in cells)) for index, header in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "  " + "  ".join(
            value.ljust(width) if index in (0, 3) else value.rjust(width)
            for index, (value, width) in enumerate(zip(values, widths, strict=True))
        )

    return [line(headers), *(line(row) for row in cells)]


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
