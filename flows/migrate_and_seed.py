"""``migrate-and-seed``: what deploy pipelines run on every deploy.

Locked migration, then the idempotent seed, then seed validation. A validation failure fails the
run, so a deploy never reports success on a database that does not hold its reference data.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.maintenance_slot import maintenance_slot
from flows.migrate import publish_migration_artifact
from flows.parameters import DatabaseURLParameter, database_url_parameter
from models.results import MigrateAndSeedReport, SeedValidationReport
from models.settings import load_settings
from tasks.schema.plan import require_passing_plan
from tasks.schema.plan_report import markdown
from tasks.seed.deploy import migrate_and_seed
from tasks.seed.upsert import load_seed_document, seed_file_path
from tasks.seed.validation import raise_for_validation
from tasks.storage import open_store

migrate_and_seed_task = task(name="migrate-and-seed", cache_policy=NO_CACHE)(migrate_and_seed)
require_plan_task = task(name="measure-migrations", cache_policy=NO_CACHE)(require_passing_plan)


@flow(name="migrate-and-seed")
def migrate_and_seed_flow(
    database_url_override: DatabaseURLParameter = None,
    reset_accounts: bool = False,
    plan_first: bool = False,
) -> MigrateAndSeedReport:
    """Migrate to head under the lock, seed the reference data, and prove it is there.

    Args:
        database_url_override: Work on this database instead of DBOPS_DATABASE_URL; a URL without
            a password, which the worker supplies (PGPASSWORD or a pgpass file).
        reset_accounts: Outside development too, bring seeded accounts back to the seed (initial
            password, ACTIVE); normally staging and production only create missing accounts.
        plan_first: First measure the pending migrations on a copy restored from the newest backup
            (the migration-plan flow), and stop before touching the database if one fails the limits.
    """
    settings = load_settings()
    url = database_url_parameter(settings, "database_url_override", database_url_override)
    logger = get_run_logger()
    document = load_seed_document(seed_file_path(settings))  # validated before anything is written
    if plan_first:
        with maintenance_slot(settings, "migration-plan"):
            plan = require_plan_task(settings, open_store(settings), logger=logger)
        create_markdown_artifact(key="migration-plan", markdown=markdown(plan))
    with maintenance_slot(settings, "migrate-and-seed"):
        report = migrate_and_seed_task(url, settings, document, reset_accounts=reset_accounts, logger=logger)
    publish_migration_artifact(report.migration)
    create_table_artifact(
        key="seed-changes",
        table=[table.model_dump() for table in report.seed.tables],
        description=f"Rows inserted, updated and unchanged by the seed of {report.seed.database}",
    )
    create_markdown_artifact(key="seed-validation", markdown=validation_markdown(report.validation))
    raise_for_validation(report.validation)
    return report


def validation_markdown(report: SeedValidationReport) -> str:
    verdict = "passed" if report.passed else "**FAILED**"
    lines = [
        f"# Seed validation of {report.database}: {verdict}",
        "",
        "| check | result | detail |",
        "|---|---|---|",
    ]
    lines += [f"| {check.name} | {_marked(check.verdict)} | {check.detail} |" for check in report.checks]
    return "\n".join(lines)


def _marked(verdict: str) -> str:
    return verdict if verdict == "ok" else f"**{verdict}**"
