"""``migration-plan``: what the pending migrations would do to production, measured on a restored copy.

The flow publishes the plan as a markdown artifact, fit to paste into a pull-request comment, and
fails when a revision breaks the limits, so a deploy pipeline can stop before production is touched.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.maintenance_slot import maintenance_slot
from models.errors import PlanFailedError
from models.plan import MigrationPlan
from models.settings import load_settings
from tasks.schema.plan import plan_migrations
from tasks.schema.plan_report import markdown
from tasks.storage import open_store

plan_task = task(name="measure-migrations", cache_policy=NO_CACHE)(plan_migrations)


@flow(name="migration-plan")
def migration_plan_flow(backup_id: str = "") -> MigrationPlan:
    """Restore a backup into a scratch copy and measure every pending revision on it.

    Args:
        backup_id: The backup to restore (see dbops backups); empty for the newest.
    """
    settings = load_settings()
    with maintenance_slot(settings, "migration-plan"):
        plan = plan_task(settings, open_store(settings), backup_id=backup_id or None, logger=get_run_logger())
    create_markdown_artifact(
        key="migration-plan", markdown=markdown(plan), description=f"Migration plan: {plan.verdict}"
    )
    if plan.verdict == "fail":
        failures = [failure for revision in plan.revisions for failure in revision.failures]
        raise PlanFailedError(
            f"the pending migrations fail the plan: {'; '.join(failures)}",
            hint="change the revision, or declare DBOPS_PLAN_ALLOW in it with the reason",
        )
    return plan
