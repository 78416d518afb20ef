"""The ``backup`` flow: the nightly job. Progress, manifest link and recent backups as artifacts."""

from __future__ import annotations

import time
from typing import cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from flows.events import backup_completed
from flows.maintenance_slot import maintenance_slot
from flows.parameters import DatabaseURLParameter, database_url_parameter
from flows.reporting import BestEffort
from models.backup import BackupManifest, BackupRun, manifest_key, source_of
from models.retention import RetentionPlan
from models.settings import load_settings
from tasks.backup.catalog import list_backups, pins
from tasks.backup.nightly import back_up
from tasks.backup.progress import Progress
from tasks.storage import ObjectStore, open_store

PROGRESS_INTERVAL_SECONDS = 2.0


@task(name="backup-database", cache_policy=NO_CACHE)
def backup_task(database_url: str | None) -> BackupRun:
    settings = load_settings()
    url = database_url_parameter(settings, "database_url", database_url)
    store = open_store(settings)
    logger = get_run_logger()
    publish = BestEffort(logger)
    artifact_id = publish(
        "progress",
        lambda: create_progress_artifact(progress=0.0, description="pg_dump bytes against the database size"),
    )
    last = [0.0]

    def report(progress: Progress) -> None:
        now = time.monotonic()
        if artifact_id is None or now - last[0] < PROGRESS_INTERVAL_SECONDS or not progress.estimated_bytes:
            return
        last[0] = now
        share = min(100.0, 100.0 * progress.dump_bytes / progress.estimated_bytes)
        description = f"{progress.dump_bytes / 1e6:,.0f} MB at {progress.throughput / 1e6:,.1f} MB/s"
        if parts := progress.describe_parts():
            description += f"; {parts}"
        publish("progress", lambda: update_progress_artifact(cast(UUID, artifact_id), share, description))

    run = back_up(url, settings, store, logger=logger, on_progress=report)
    manifest = run.manifest
    backup_completed(manifest)
    if artifact_id is not None:
        publish("progress", lambda: update_progress_artifact(cast(UUID, artifact_id), 100.0, "complete"))
    publish(
        "manifest link",
        lambda: create_link_artifact(
            key="backup-manifest",
            link=f"{store.describe()}/{manifest_key(manifest.backup_id)}",
            link_text=f"manifest of backup {manifest.backup_id}",
        ),
    )
    publish(
        "recent backups",
        lambda: create_table_artifact(key="recent-backups", table=recent_rows(store, run.retention)),
    )
    return run


def recent_rows(store: ObjectStore, retention: RetentionPlan | None = None) -> list[dict[str, object]]:
    """The newest backups, each with what this run's retention made of it: the rules that keep it, or
    the object lock that keeps a backup the policy would have removed."""
    pinned = pins(store)
    why = {backup_id: ", ".join(rules) for backup_id, rules in (retention.keep if retention else {}).items()}
    why |= retention.lock_notes() if retention else {}
    return [
        {
            "backup": recent.backup_id,
            "source": source_of(recent).describe(),
            "taken": recent.started_at.isoformat(timespec="seconds"),
            "stored MB": round(recent.stored_bytes / 1e6, 1),
            "seconds": recent.duration_seconds,
            "revision": recent.alembic_revision,
            "pinned": pinned[recent.backup_id].reason if recent.backup_id in pinned else "",
            "retention": why.get(recent.backup_id, ""),
        }
        for recent in list_backups(store)[:14]
    ]


@flow(name="backup")
def backup_flow(
    database_url: DatabaseURLParameter = None,
) -> BackupManifest:
    """Dump the database in a consistent snapshot into the store, manifest last; then apply retention.

    Pruning runs only once the new backup is complete, so a failed night never thins out the history.

    Args:
        database_url: Back up this database instead of DBOPS_DATABASE_URL; a URL without
            a password, which the worker supplies (PGPASSWORD or a pgpass file).
    """
    settings = load_settings()
    if database_url:
        database_url_parameter(settings, "database_url", database_url)  # refused before the slot is taken
    with maintenance_slot(settings, "backup"):
        return backup_task(database_url).manifest
