"""The ``migrate`` flow: locked Alembic migration of one database, with a table artifact of what ran."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.maintenance_slot import maintenance_slot
from flows.parameters import DatabaseURLParameter, database_url_parameter
from models.results import MigrationResult
from models.settings import load_settings
from tasks.schema.migrate import migrate

# NO_CACHE: the inputs hold the database URL with its password, which must never be hashed into a
# cache key or persisted; a migration must run every time anyway.
migrate_task = task(name="migrate-database", cache_policy=NO_CACHE)(migrate)


@flow(name="migrate", log_prints=False)
def migrate_flow(
    target: str = "head",
    allow_downgrade: bool = False,
    database_url_override: DatabaseURLParameter = None,
) -> MigrationResult:
    """Bring the database to *target* under the migration lock, so two deploys never migrate at once.

    Args:
        target: Revision id to migrate to, or head / base.
        allow_downgrade: Permit a downgrade when DBOPS_ENVIRONMENT is production.
        database_url_override: Migrate this database instead of DBOPS_DATABASE_URL; a URL without
            a password, which the worker supplies (PGPASSWORD or a pgpass file).
    """
    settings = load_settings()
    url = database_url_parameter(settings, "database_url_override", database_url_override)
    with maintenance_slot(settings, "migrate"):
        result = migrate_task(
            url, settings, target=target, allow_downgrade=allow_downgrade, logger=get_run_logger()
        )
    publish_migration_artifact(result)
    return result


def publish_migration_artifact(result: MigrationResult) -> None:
    """The run's migration, as a table on the flow run and on the global Artifacts page."""
    create_table_artifact(
        key="migration",
        table=[
            {
                "database": result.database,
                "direction": result.direction.value,
                "from": result.revision_before or "base",
                "to": result.revision_after or "base",
                "steps": len(result.steps),
                "lock wait (s)": result.lock_wait_seconds,
                "elapsed (s)": result.elapsed_seconds,
            }
        ],
        description="; ".join(result.steps) or "already at the target revision",
    )
