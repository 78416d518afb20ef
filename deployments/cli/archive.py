"""``dbops archive-logs`` and ``dbops restore-archive``."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated

import typer

from models.errors import ConfigurationError
from models.log_archive import ARCHIVED_TABLES
from models.settings import load_settings
from tasks.log_archive.archiving import archive_table, check_table
from tasks.log_archive.reimport import import_archive
from tasks.postgres.engine import database_url
from tasks.storage import open_store


def register(app: typer.Typer) -> None:
    app.command("archive-logs")(archive_logs_command)
    app.command("restore-archive")(restore_archive_command)


def archive_logs_command(
    table: Annotated[
        str | None,
        typer.Option("--table", metavar="T", help="audit_logs or analytics_events (default: both)."),
    ] = None,
    older_than_days: Annotated[
        int | None, typer.Option("--older-than-days", min=1, help="Override the table's retention.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be archived; write nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcomes as JSON.")] = False,
) -> None:
    """Move rows older than the retention to the object store, verified before they are deleted."""
    settings = load_settings()
    tables = [table] if table else list(ARCHIVED_TABLES)
    for name in tables:
        check_table(name)
    url, store = database_url(settings), open_store(settings)
    outcomes = [
        archive_table(url, settings, store, name, older_than_days=older_than_days, dry_run=dry_run)
        for name in tables
    ]
    if as_json:
        typer.echo(json.dumps([outcome.model_dump(mode="json") for outcome in outcomes], indent=2))
        return
    for outcome in outcomes:
        verb = "would archive" if outcome.dry_run else "archived"
        typer.echo(
            f"{outcome.table}: {verb} {outcome.rows_archived:,} rows older than {outcome.cutoff.isoformat()}"
            + (
                ""
                if outcome.dry_run
                else f" in {outcome.batches} batch(es), {outcome.bytes_stored / 1e6:,.1f} MB stored, "
                f"{outcome.rows_per_second:,.0f} rows/s; table {outcome.table_bytes_before / 1e6:,.1f} MB -> "
                f"{outcome.table_bytes_after / 1e6:,.1f} MB"
            )
        )


def restore_archive_command(
    table: Annotated[str, typer.Option("--table", metavar="T", help="audit_logs or analytics_events.")],
    first_day: Annotated[str, typer.Option("--from", metavar="DATE", help="First day (YYYY-MM-DD, UTC).")],
    last_day: Annotated[str, typer.Option("--to", metavar="DATE", help="Last day, inclusive.")],
    into: Annotated[
        str | None,
        typer.Option("--into", metavar="TABLE", help="A staging table (created like T) instead of T."),
    ] = None,
    from_database: Annotated[
        str | None,
        typer.Option(
            "--from-database",
            metavar="[SYSTEM_ID/]NAME",
            help="Read the archive of database NAME (on server SYSTEM_ID) instead of this database's own.",
        ),
    ] = None,
) -> None:
    """Re-import archived rows (ids already present are skipped), for an audit."""
    settings = load_settings()
    outcome = import_archive(
        database_url(settings),
        settings,
        open_store(settings),
        table,
        _day(first_day, "--from"),
        _day(last_day, "--to"),
        into=into,
        from_database=from_database,
    )
    notes = [
        f"{count} {what}"
        for count, what in (
            (outcome.earlier_release_objects, "of an earlier release, which recorded no source"),
            (outcome.unlisted_objects, "in no run manifest, checked by their metadata"),
        )
        if count
    ]
    typer.echo(
        f"archive of {outcome.source.describe()}: {outcome.objects} object(s)"
        + (f" ({'; '.join(notes)})" if notes else "")
        + f", {outcome.rows_read:,} rows read, {outcome.rows_inserted:,} inserted into {outcome.into}, "
        f"{outcome.rows_skipped:,} already there"
    )


def _day(raw: str, option: str) -> date:
    try:
        return datetime.strptime(raw, "%Y-%m-%d").date()
    except ValueError:
        raise ConfigurationError(f"{option} {raw!r} is not a date", hint="use YYYY-MM-DD") from None
