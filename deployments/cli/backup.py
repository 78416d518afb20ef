"""``dbops backup`` and ``dbops backups``."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Annotated

import typer

from flows.events import backup_completed
from models.backup import source_of
from models.rehearsal import RehearsalRecord
from models.settings import load_settings
from tasks.backup.catalog import backup_keys, list_backups, pin, pins, prune, rehearsals, unpin
from tasks.backup.nightly import back_up
from tasks.backup.progress import Progress
from tasks.postgres.engine import database_url
from tasks.storage import open_store


def register(app: typer.Typer) -> None:
    app.command("backup")(backup_command)
    app.command("backups")(backups_command)
    app.command("prune")(prune_command)
    app.command("pin")(pin_command)
    app.command("unpin")(unpin_command)


def pin_command(
    backup_id: Annotated[str, typer.Argument(metavar="ID", help="The backup to keep (see dbops backups).")],
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why it must stay.")],
) -> None:
    """Keep a backup from every prune until it is unpinned, with the reason why."""
    pinned = pin(open_store(load_settings()), backup_id, reason)
    typer.echo(f"backup {backup_id} is pinned: {pinned.reason}")


def unpin_command(
    backup_id: Annotated[str, typer.Argument(metavar="ID", help="The pinned backup.")],
) -> None:
    """Let the retention policy judge a pinned backup again."""
    released = unpin(open_store(load_settings()), backup_id)
    typer.echo(f"backup {backup_id} is {'no longer pinned' if released else 'not pinned; nothing to do'}")


def backup_command(
    no_prune: Annotated[bool, typer.Option("--no-prune", help="Keep every old backup this time.")] = False,
) -> None:
    """Dump the database in a consistent snapshot into the backup store, then apply the retention policy."""
    settings = load_settings()
    store = open_store(settings)
    on_progress = _progress_printer() if sys.stderr.isatty() else None
    run = back_up(database_url(settings), settings, store, prune_after=not no_prune, on_progress=on_progress)
    backup_completed(run.manifest)
    manifest = run.manifest
    if on_progress is not None:
        typer.echo("", err=True)
    typer.echo(
        f"backup {manifest.backup_id}: {manifest.dump_bytes / 1e6:,.1f} MB dumped, "
        f"{manifest.stored_bytes / 1e6:,.1f} MB stored in {store.describe()} "
        f"in {manifest.duration_seconds:.1f} s"
    )
    if run.retention is not None:
        retention = run.retention
        locked = f", retained by object lock {len(retention.locked)}" if retention.locked else ""
        typer.echo(f"retention: kept {len(retention.keep)}, removed {len(retention.remove)}{locked}")
        for backup_id, note in retention.lock_notes().items():
            typer.echo(f"backup {backup_id}: {note}")


def prune_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be removed; remove nothing.")
    ] = False,
) -> None:
    """Apply the retention policy (DBOPS_BACKUP_KEEP_*) to the complete backups.

    A backup the policy would remove while its object lock holds is listed as kept, retained by
    object lock until its date: the store's answer, not a failure.
    """
    settings = load_settings()
    plan = prune(open_store(settings), settings.retention_policy, settings.timezone, dry_run=dry_run)
    for backup_id, rules in sorted(plan.keep.items(), reverse=True):
        typer.echo(f"keep    {backup_id}  ({', '.join(rules)})")
    for backup_id, note in plan.lock_notes().items():
        typer.echo(f"keep    {backup_id}  ({note})")
    for backup_id in plan.remove:
        typer.echo(f"{'would remove' if dry_run else 'removed'} {backup_id}")


def backups_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifests as JSON.")] = False,
) -> None:
    """List complete backups (those with a manifest), newest first, with their latest rehearsal."""
    settings = load_settings()
    store = open_store(settings)
    keys = backup_keys(store)  # one listing for both
    manifests = list_backups(store, keys)
    records = rehearsals(store, keys)
    pinned = pins(store, keys)
    if as_json:
        listed = [
            manifest.model_dump(mode="json")
            | {
                "rehearsal": records[manifest.backup_id].model_dump(mode="json")
                if manifest.backup_id in records
                else None,
                "pin": pinned[manifest.backup_id].model_dump(mode="json")
                if manifest.backup_id in pinned
                else None,
            }
            for manifest in manifests
        ]
        typer.echo(json.dumps(listed, indent=2))
        return
    typer.echo(
        f"{'backup':<24} {'source':<32} {'taken (UTC)':<20} {'stored':>10} {'seconds':>8}  "
        f"{'revision':<9} rehearsed"
    )
    for manifest in manifests:
        typer.echo(
            f"{manifest.backup_id:<24} {source_of(manifest).describe():<32} "
            f"{manifest.started_at:%Y-%m-%d %H:%M:%S} "
            f"{manifest.stored_bytes / 1e6:>8,.1f}MB {manifest.duration_seconds:>8.1f}  "
            f"{manifest.alembic_revision or '-':<9} {_rehearsed(records.get(manifest.backup_id))}"
            + (f"  pinned: {pinned[manifest.backup_id].reason}" if manifest.backup_id in pinned else "")
            + _measured(records.get(manifest.backup_id))
        )


def _rehearsed(record: RehearsalRecord | None) -> str:
    """``restored in 42.1 s`` (the measured recovery time), ``FAILED``, or ``never``."""
    if record is None:
        return "never"
    when = f"{record.rehearsed_at:%Y-%m-%d %H:%M}"
    if record.passed:
        return f"restored in {record.timings.total:.1f} s ({when})"
    return f"FAILED ({when})"


def _measured(record: RehearsalRecord | None) -> str:
    """The pending revisions the rehearsal measured on this backup, as ``dbops migrate --plan`` would
    judge them: ``  measured 0003 pass, 0004 FAIL``."""
    if record is None or not record.pending_revisions:
        return ""
    verdicts = [
        f"{revision.revision} {'FAIL' if revision.failures else 'pass'}"
        for revision in record.pending_revisions
    ]
    return "  measured " + ", ".join(verdicts)


def _progress_printer() -> Callable[[Progress], None]:
    """A one-line progress display for terminals, redrawn at most four times a second."""
    last = [0.0]

    def show(progress: Progress) -> None:
        now = time.monotonic()
        if now - last[0] < 0.25:
            return
        last[0] = now
        share = min(progress.dump_bytes / progress.estimated_bytes, 1.0) if progress.estimated_bytes else 0.0
        bar = "#" * int(share * 30)
        sys.stderr.write(
            f"\r[{bar:<30}] {progress.dump_bytes / 1e6:,.0f} of ~{progress.estimated_bytes / 1e6:,.0f} MB "
            f"at {progress.throughput / 1e6:,.1f} MB/s"
            + (f" ({parts})" if (parts := progress.describe_parts()) else "")
        )
        sys.stderr.flush()

    return show
