"""``dbops migrate --plan``: every pending revision measured on a restored copy of the database.

The newest backup of the database (or the one named) is restored into a scratch copy
(:func:`tasks.restore.scratch.scratch_copy`, the rehearsal's machinery), and the revisions between
the copy's revision and the code's head are applied to it with the tracer (:mod:`tasks.schema.tracer`).
The copy is dropped in every outcome. Production is only read: its identity, to pick its backups.
"""

from __future__ import annotations

import logging
from pathlib import Path

from models.backup import BackupManifest
from models.errors import PlanFailedError, PlanUnavailableError
from models.plan import MigrationPlan, RevisionTrace, StatementTrace, judge, verdict
from models.settings import Settings
from tasks.restore.scratch import scratch_copy
from tasks.schema.squawk import LintError, squawk
from tasks.schema.tracer import TracedUpgrade, trace_upgrade
from tasks.storage import ObjectStore

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
_log = logging.getLogger(__name__)


def plan_migrations(
    settings: Settings,
    store: ObjectStore,
    *,
    backup_id: str | None = None,
    script_location: Path | None = None,
    logger: Logger | None = None,
) -> MigrationPlan:
    """Measure every pending revision on a copy restored from *backup_id* (None: the newest)."""
    log = logger or _log
    with scratch_copy(
        settings,
        store,
        backup_id=backup_id,
        purpose="migration plan",
        measuring="measure the migrations on",
        prefix="plan",
        no_backup_hint="take one with dbops backup, or fall back to the lint alone (make lint)",
        unavailable=PlanUnavailableError,
        logger=log,
    ) as copy:
        traced = trace_upgrade(copy.url, settings, script_location=script_location, analyze=True, log=log)
    return _judged(settings, copy.manifest, copy.database, traced, script_location)


def require_passing_plan(
    settings: Settings, store: ObjectStore, *, logger: Logger | None = None
) -> MigrationPlan:
    """The plan of the pending migrations, or :class:`PlanFailedError` when a revision fails it: what
    ``migrate-and-seed --plan-first`` runs before it touches production."""
    plan = plan_migrations(settings, store, logger=logger)
    failures = [
        f"{revision.revision}: {failure}" for revision in plan.revisions for failure in revision.failures
    ]
    if failures:
        raise PlanFailedError(
            f"the pending migrations fail the plan on a copy of backup {plan.backup}, so "
            f"{plan.database} was not touched: {'; '.join(failures)}",
            hint="change the revision, or declare DBOPS_PLAN_ALLOW in it with the reason; "
            "dbops migrate --plan shows the whole measurement",
        )
    return plan


def _judged(
    settings: Settings,
    manifest: BackupManifest,
    database: str,
    traced: TracedUpgrade,
    script_location: Path | None,
) -> MigrationPlan:
    revisions: list[RevisionTrace] = []
    for revision in traced.revisions:
        for statement in revision.statements:
            statement.lint = _lint(statement)
        revisions.append(
            judge(
                revision,
                rows=traced.rows,
                max_lock_seconds=settings.migration_max_lock_seconds,
                max_rewrite_mb=settings.migration_max_rewrite_mb,
            )
        )
    return MigrationPlan(
        backup=manifest.backup_id,
        database=database,
        from_revision=traced.from_revision,
        to_revision=traced.to_revision,
        verdict=verdict(revisions),
        max_lock_seconds=settings.migration_max_lock_seconds,
        max_rewrite_mb=settings.migration_max_rewrite_mb,
        revisions=revisions,
    )


def _lint(statement: StatementTrace) -> list[str]:
    """squawk's findings on the statement alone; where squawk is not installed, a line saying so."""
    try:
        findings = squawk(statement.sql.rstrip(";") + ";", label="statement.sql")
    except LintError as error:
        return [f"not linted: {error}"]
    return [f"{finding.rule}: {finding.message}" for finding in findings]
