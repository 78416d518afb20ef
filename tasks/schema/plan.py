"""``dbops migrate --plan``: every pending revision measured on a restored copy of the database.

The newest backup of the database (or the one named) is restored into a scratch copy with the
rehearsal's machinery (its checks before anything is created, the run's lock, the guard, the sweep,
streaming and parallel parts), and the revisions between the copy's revision and the code's head
are applied to it with the tracer (:mod:`tasks.schema.tracer`). The copy is dropped in every
outcome. Production is only read: its identity, to pick its backups.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from models.backup import BackupManifest
from models.errors import DbopsError, PlanFailedError, PlanUnavailableError, RestoreRefusedError
from models.marks import DatabaseMark, MarkKind
from models.plan import MigrationPlan, RevisionTrace, StatementTrace, judge, verdict
from models.settings import Settings
from tasks.backup.source import database_source
from tasks.postgres.engine import database_url
from tasks.postgres.guard import maintenance_guard
from tasks.restore.copy import vet_backup, work_directory
from tasks.restore.leftovers import sweep
from tasks.restore.parts import fetch_backup
from tasks.restore.runs import hold_run, run_id
from tasks.restore.target import (
    CreatedDatabase,
    create_database,
    drop_created,
    rehearsal_server,
    timestamped_name,
)
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
    server = rehearsal_server(settings)
    wanted = database_source(database_url(settings), settings)
    try:
        manifest, pg_restore = vet_backup(store, backup_id, settings, server, wanted=wanted)
    except RestoreRefusedError as error:
        raise PlanUnavailableError(
            f"no backup of {wanted.database} to measure the migrations on: {error.message.rstrip('.')}",
            detail=error.detail,
            hint="take one with dbops backup, or fall back to the lint alone (make lint)",
        ) from None
    run = run_id()
    with (
        hold_run(server, settings, run),
        maintenance_guard(server, settings, wanted.database, "migration plan", logger=log),
    ):
        sweep(server, settings, run=run, held=wanted.database, set_aside=False, logger=log)
        traced = _restore_and_trace(settings, store, manifest, pg_restore, run, script_location, log)
    return _judged(settings, manifest, wanted.database, traced, script_location)


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


def _restore_and_trace(
    settings: Settings,
    store: ObjectStore,
    manifest: BackupManifest,
    pg_restore: object,
    run: str,
    script_location: Path | None,
    log: Logger,
) -> TracedUpgrade:
    server = rehearsal_server(settings)
    created: CreatedDatabase | None = None
    try:
        with work_directory(settings, run) as directory:
            fetched = fetch_backup(store, manifest, settings, directory, logger=log)
            mark = DatabaseMark(
                kind=MarkKind.SCRATCH, run=run, created=datetime.now(UTC), backup=manifest.backup_id
            )
            created = create_database(server, settings, timestamped_name("plan"), mark=mark)
            try:
                fetched.restore(created.url, pg_restore, settings, keep_ownership=False, log=log)  # type: ignore[arg-type]
            except DbopsError as error:
                raise PlanUnavailableError(
                    f"backup {manifest.backup_id} did not restore, so nothing was measured",
                    detail=error.one_line(),
                    hint="rehearse it (dbops rehearse --backup ID), or plan on another with --backup",
                ) from None
        return trace_upgrade(created.url, settings, script_location=script_location, analyze=True, log=log)
    finally:
        if created is not None:
            drop_created(created, settings, logger=log)


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
