"""``dbops rehearse`` proves a backup restores; ``dbops restore`` restores one over a live database."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from flows.events import rehearsal_finished, restore_rejected, restore_rolled_back, restore_swapped
from models.errors import ConfigurationError, RestoreRejectedError
from models.rehearsal import RehearsalRecord, RestoredCopy, RestoreMode, RestoreSummary
from models.settings import load_settings
from tasks.restore.operator import restore
from tasks.restore.rehearsal import raise_for_failure, rehearse
from tasks.restore.rollback import rollback
from tasks.restore.summary import age, terminal_lines
from tasks.storage import open_store


def register(app: typer.Typer) -> None:
    app.command("rehearse")(rehearse_command)
    app.command("restore")(restore_command)


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
    rehearsal_finished(record)
    if as_json:
        typer.echo(record.model_dump_json(indent=2))
    else:
        for line in _summary(record):
            typer.echo(line)
    raise_for_failure(record)


def restore_command(
    target: Annotated[
        str | None, typer.Option("--target", metavar="DB", help="The database to replace.")
    ] = None,
    confirm: Annotated[
        str | None, typer.Option("--confirm", metavar="DB", help="The target's name again: the safety catch.")
    ] = None,
    backup: Annotated[
        str, typer.Option("--backup", metavar="ID", help="The backup to restore, or latest.")
    ] = "latest",
    mode: Annotated[
        RestoreMode,
        typer.Option("--mode", help="swap: build beside and swap names; in-place: drop and recreate."),
    ] = RestoreMode.SWAP,
    reseed: Annotated[
        bool, typer.Option("--reseed", help="Development only: seed again afterwards.")
    ] = False,
    from_database: Annotated[
        str | None,
        typer.Option(
            "--from-database",
            metavar="NAME",
            help="Restore a backup of database NAME (default: the target's name) into the target.",
        ),
    ] = None,
    rollback_target: Annotated[
        str | None,
        typer.Option("--rollback", metavar="DB", help="Undo the last swap restore of DB instead."),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            help="Restore without asking, after the summary: needed, with --confirm, without a terminal.",
        ),
    ] = False,
) -> None:
    """Restore a backup over a database (swap keeps the old one for --rollback), then migrate and check it."""
    settings = load_settings()
    if rollback_target is not None:
        rolled = rollback(settings, rollback_target, confirm=confirm)
        restore_rolled_back(rolled)
        since = (
            f" (set aside {age(rolled.set_aside_at, datetime.now(UTC))} ago)" if rolled.set_aside_at else ""
        )
        typer.echo(
            f"{rolled.target} is {rolled.restored_from}{since} again; "
            f"the restored copy is kept as {rolled.set_aside_as}"
        )
        return
    if target is None:
        raise ConfigurationError("dbops restore needs --target DB (or --rollback DB)")
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if not yes and not interactive:
        raise ConfigurationError(
            f"dbops restore without a terminal needs --yes as well as --confirm {target}; nothing was done",
            hint="on a terminal it shows the summary and asks; a script must say --yes to restore unseen",
        )
    question = _Question(asking=not yes)
    try:
        result = restore(
            settings,
            open_store(settings),
            backup_id=backup,
            target=target,
            confirm=confirm,
            mode=mode,
            reseed=reseed,
            from_database=from_database,
            approve=question,
        )
    except RestoreRejectedError as rejected:
        # The event names the backup the operator was shown (``latest`` resolved), not what was typed.
        shown = question.summary.backup_id if question.summary is not None else backup
        restore_rejected(target, shown, rejected.message)
        raise
    restore_swapped(result)
    for line in _summary(
        result, f"restore of backup {result.backup_id} into {result.target} ({result.mode.value})"
    ):
        typer.echo(line)
    if result.previous_database:
        typer.echo(
            f"  the previous database is kept as {result.previous_database}; undo with "
            f"dbops restore --rollback {result.target} --confirm {result.target}"
        )


class _Question:
    """The approval put to the operator, remembering the summary it showed: a rejection is about that
    summary's backup, which ``--backup latest`` only names once the backup has been chosen."""

    def __init__(self, *, asking: bool) -> None:
        self.asking = asking
        self.summary: RestoreSummary | None = None

    def __call__(self, summary: RestoreSummary) -> bool:
        self.summary = summary
        return _ask(summary, asking=self.asking)


def _ask(summary: RestoreSummary, *, asking: bool) -> bool:
    """Show the summary; on a terminal, the operator types the target's name to go on."""
    typer.echo(f"restore {summary.target} from backup {summary.backup_id}:")
    for line in terminal_lines(summary, datetime.now(UTC)):
        typer.echo(line)
    if not asking:
        return True
    answer = typer.prompt(
        f"type {summary.target} to replace it with this copy (anything else leaves it as it is)",
        default="",
        show_default=False,
    )
    return bool(answer.strip() == summary.target)


def _summary(record: RestoredCopy, title: str | None = None) -> list[str]:
    timings = record.timings
    verdict = "passed" if record.passed else "FAILED"
    lines = [
        f"{title or f'rehearsal of backup {record.backup_id}'} on {record.server}: {verdict}",
        f"  download and unpack  {timings.download:>8.2f} s  {record.dump_bytes / 1e6:,.1f} MB dump",
        f"  pg_restore -j {record.jobs:<5}  {timings.restore:>8.2f} s  "
        f"{record.restored_database_bytes / 1e6:,.1f} MB database",
        f"    pre-data           {timings.pre_data:>8.2f} s",
        f"    data               {timings.data:>8.2f} s",
        f"    post-data          {timings.post_data:>8.2f} s  beside it, counts and data checks "
        f"{timings.early_checks:.2f} s",
        f"  migrate              {timings.migrate:>8.2f} s  {record.backup_revision} -> {record.migrated_to}",
        f"  integrity checks     {timings.validation:>8.2f} s",
        f"  recovery time        {timings.total:>8.2f} s",
    ]
    if isinstance(record, RehearsalRecord) and record.scratch_kept:
        lines.append(f"  kept scratch database {record.scratch_database}")
    return lines
