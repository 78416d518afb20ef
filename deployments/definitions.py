"""Every deployment, defined once: ``dbops serve`` serves these, and ``deployments/prefect.yaml`` mirrors them
for ``prefect deploy --all`` onto a work pool (a test keeps the two in step).

Schedules run in DBOPS_TIMEZONE. The restore deployment refuses a second concurrent run outright (an
operator clicking twice must not queue a second restore); migrate-and-seed queues them (every deploy
must migrate, one after the other). Across deployments, the flows themselves share the maintenance
slot, so backup, restore, rehearsal, migration and archiving never overlap on any worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from prefect import Flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron

from flows.index_review import index_review_flow
from flows.migrate_and_seed import migrate_and_seed_flow
from flows.migration_plan import migration_plan_flow
from flows.restore import restore_flow, restore_rollback_flow
from flows.restore_rehearsal import restore_rehearsal_flow
from flows.restore_tables import restore_tables_flow
from flows.scheduled import nightly_backup_flow, weekly_maintenance_flow
from models.settings import Settings

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

NIGHTLY_CRON = "0 2 * * *"
WEEKLY_CRON = "0 3 * * 0"
TAGS = ["dbops"]


def _deployment(flow: Flow[..., Any], name: str, **options: Any) -> RunnerDeployment:
    """``flow.to_deployment``, which is sync here (it is typed for async callers too)."""
    return cast("RunnerDeployment", flow.to_deployment(name, tags=TAGS, **options))


def runner_deployments(settings: Settings) -> list[RunnerDeployment]:
    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
    in_turn = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    return [
        _deployment(
            nightly_backup_flow,
            "nightly-backup",
            schedules=[Cron(NIGHTLY_CRON, timezone=settings.timezone)],
            description="Back up the database, then rehearse the restore of that backup.",
        ),
        _deployment(
            weekly_maintenance_flow,
            "weekly-maintenance",
            schedules=[Cron(WEEKLY_CRON, timezone=settings.timezone)],
            description="Archive old logs, review the indexes, validate integrity.",
        ),
        _deployment(
            restore_flow,
            "restore",
            concurrency_limit=one_at_a_time,
            description="Restore a backup over a database (swap keeps the old one for rollback).",
        ),
        _deployment(
            restore_rollback_flow,
            "restore-rollback",
            concurrency_limit=one_at_a_time,
            description="Undo the last swap restore.",
        ),
        _deployment(
            restore_tables_flow,
            "restore-tables",
            concurrency_limit=one_at_a_time,
            description="Restore chosen tables' rows from a backup into a new schema, and merge the "
            "missing ones back.",
        ),
        _deployment(
            restore_rehearsal_flow, "restore-rehearsal", description="Prove a backup restores, on demand."
        ),
        _deployment(
            index_review_flow,
            "index-review",
            description="Review the indexes; with verify, measure the advice on a copy restored from a "
            "backup.",
        ),
        _deployment(
            migration_plan_flow,
            "migration-plan",
            description="Measure every pending migration on a copy restored from a backup.",
        ),
        _deployment(
            migrate_and_seed_flow,
            "migrate-and-seed",
            concurrency_limit=in_turn,
            description="What deploy pipelines run: locked migration, seed, seed validation.",
        ),
    ]
