"""``dbops migrate``, ``check`` and ``status``: the schema, through Alembic."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from models.marks import DbopsDatabase
from models.settings import Settings, load_settings
from tasks.postgres.engine import database_url
from tasks.schema.drift import detect_drift
from tasks.schema.migrate import migrate
from tasks.schema.state import schema_state


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate_command)
    app.command("check")(check_command)
    app.command("status")(status_command)


def migrate_command(
    to: Annotated[str, typer.Option("--to", help="Target revision id, head or base.")] = "head",
    allow_downgrade: Annotated[
        bool, typer.Option("--allow-downgrade", help="Permit a downgrade when DBOPS_ENVIRONMENT=production.")
    ] = False,
    plan: Annotated[
        bool,
        typer.Option(
            "--plan",
            help="Measure every pending revision on a copy restored from a backup instead; exit 1 if one "
            "fails the limits, 2 if nothing could be measured.",
        ),
    ] = False,
    backup_id: Annotated[
        str | None, typer.Option("--backup", help="With --plan: the backup to restore.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --plan: print the plan as JSON.")] = False,
) -> None:
    """Upgrade (or downgrade) the database to a revision, under the migration lock."""
    settings = load_settings()
    if plan:
        _plan(settings, backup_id, as_json)
        return
    result = migrate(database_url(settings), settings, target=to, allow_downgrade=allow_downgrade)
    if result.steps:
        typer.echo(
            f"{result.database}: {result.direction.value} {result.revision_before or 'base'} -> "
            f"{result.revision_after or 'base'} in {result.elapsed_seconds:.2f} s "
            f"(waited {result.lock_wait_seconds:.2f} s for the migration lock)"
        )
        for step in result.steps:
            typer.echo(f"  {step}")
    else:
        typer.echo(f"{result.database}: already at {result.revision_after or 'base'}, nothing to do")


def _plan(settings: Settings, backup_id: str | None, as_json: bool) -> None:
    from tasks.schema.plan import plan_migrations  # the restore machinery: only --plan needs it
    from tasks.schema.plan_report import text
    from tasks.storage import open_store

    measured = plan_migrations(settings, open_store(settings), backup_id=backup_id)
    typer.echo(measured.model_dump_json(indent=2) if as_json else text(measured))
    if measured.verdict == "fail":
        raise typer.Exit(1)


def check_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Compare the models with the live database; exit 1 on drift."""
    settings = load_settings()
    report = detect_drift(database_url(settings), settings)
    if as_json:
        typer.echo(json.dumps(report.model_dump(mode="json") | {"has_drift": report.has_drift}, indent=2))
    elif report.has_drift:
        typer.echo(f"{report.database}: {len(report.differences)} difference(s) between models and database:")
        for difference in report.differences:
            typer.echo(f"  - {difference}")
    else:
        typer.echo(f"{report.database}: schema matches the models at revision {report.revision}")
    if report.has_drift:
        raise typer.Exit(1)


def status_command() -> None:
    """Show the schema's revision and each table's rows, indexes and size.

    Also what dbops left on the server: an interrupted restore is finished or undone here when no job
    holds its guard, and a closed or missing database is reported, not an error about the URL.
    """
    from tasks.restore.leftovers import dbops_databases  # only this command needs them
    from tasks.restore.recovery import examine

    settings = load_settings()
    url = database_url(settings)
    server = url.set(database="postgres")
    reachable, lines = examine(server, settings, url.database or "")
    for line in lines:
        typer.echo(line)
    if reachable != "open":
        typer.echo(
            f"{url.database}: {'refuses connections' if reachable == 'closed' else 'does not exist'} "
            f"on {server.host}:{server.port}"
        )
        _list_made(dbops_databases(server, settings))
        raise typer.Exit(1)
    state = schema_state(url, settings)
    marker = "at head" if state.at_head else f"head is {state.head}: run dbops migrate"
    typer.echo(f"{state.database} (PostgreSQL {state.server_version})")
    typer.echo(f"revision {state.revision or 'none'} ({marker})")
    if state.tables:
        typer.echo(f"{'table':<20} {'rows':>12} {'indexes':>8} {'size':>10}")
        for table in state.tables:
            typer.echo(
                f"{table.name:<20} {table.rows:>12,} {table.indexes:>8} {_size(table.total_bytes):>10}"
            )
    _list_made(dbops_databases(server, settings))


def _list_made(made: list[DbopsDatabase]) -> None:
    typer.echo(f"databases dbops made on this server: {len(made)}, {_size(sum(d.bytes for d in made))}")
    now = datetime.now(UTC)
    for database in made:
        age = (now - database.created).total_seconds() / 3600
        run = "run alive" if database.alive else "run gone"
        typer.echo(
            f"  {database.name:<48} {database.kind.value:<15} {_size(database.bytes):>10} "
            f"{age:>7.1f} h old  sessions {database.sessions}  {run}"
            + (f"  interrupted: {database.interrupted}" if database.interrupted else "")
        )


def _size(total_bytes: int) -> str:
    size = float(total_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
