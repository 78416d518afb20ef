"""``dbops rehearse``: prove a backup restores (and, later in this file, restore one)."""

from __future__ import annotations

from typing import Annotated

import typer

from models.rehearsal import RehearsalRecord
from models.settings import load_settings
from tasks.rehearsal import raise_for_failure, rehearse
from tasks.storage import open_store


def register(app: typer.Typer) -> None:
    app.command("rehearse")(rehearse_command)


def rehearse_command(
    backup: Annotated[
        str, typer.Option("--backup", metavar="ID", help="The backup to rehearse, or latest.")
    ] = "latest",
    keep: Annotated[bool, typer.Option("--keep", help="Keep the scratch database afterwards.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rehearsal record as JSON.")] = False,
) -> None:
    """Restore a backup into a scratch database, migrate it, check it, compare counts, then drop it."""
    settings = load_settings()
    record = rehearse(settings, open_store(settings), backup_id=backup, keep=keep)
    if as_json:
        typer.echo(record.model_dump_json(indent=2))
    else:
        for line in _summary(record):
            typer.echo(line)
    raise_for_failure(record)


def _summary(record: RehearsalRecord) -> list[str]:
    timings = record.timings
    verdict = "passed" if record.passed else "FAILED"
    lines = [
        f"rehearsal of backup {record.backup_id} on {record.server}: {verdict}",
        f"  download and unpack  {timings.download:>8.2f} s  {record.archive_bytes / 1e6:,.1f} MB archive",
        f"  pg_restore -j {record.jobs:<5}  {timings.restore:>8.2f} s  "
        f"{record.restored_database_bytes / 1e6:,.1f} MB database",
        f"  migrate              {timings.migrate:>8.2f} s  {record.backup_revision} -> {record.migrated_to}",
        f"  integrity checks     {timings.validation:>8.2f} s",
        f"  recovery time        {timings.total:>8.2f} s",
    ]
    if record.scratch_kept:
        lines.append(f"  kept scratch database {record.scratch_database}")
    return lines
