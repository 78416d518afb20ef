"""``dbops demo``: the main job end to end on embedded defaults, with a summary of what each step did.

Nothing needs configuring: with no DBOPS_DATABASE_URL an embedded PostgreSQL runs under
DBOPS_HOME (``.dbops``), and backups and log archives go to a directory beside it. A second run reuses
the server and the data (the synthetic load is skipped once there), so it is quick and changes
nothing it should not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import typer

from models.errors import DbopsError
from models.index_review import FindingKind, Verdict
from models.log_archive import ARCHIVED_TABLES
from models.settings import Settings, load_settings
from tasks.backup.nightly import back_up
from tasks.index_review.runner import review_indexes
from tasks.index_review.verify.run import verify_review
from tasks.integrity.runner import integrity_error, validate_integrity
from tasks.log_archive.archiving import archive_table
from tasks.postgres.engine import database_url
from tasks.restore.rehearsal import raise_for_failure, rehearse
from tasks.seed.app_workload import run_app_workload
from tasks.seed.deploy import migrate_and_seed
from tasks.seed.synth import start_of_today, synth
from tasks.seed.synth_rows import SynthPlan
from tasks.seed.upsert import load_seed_document, seed_file_path
from tasks.seed.validation import raise_for_validation
from tasks.storage import open_store

#: Calls of each application statement: enough for the workload advice, quick next to the rest.
APPLICATION_CALLS = 75


@dataclass(frozen=True)
class StepOutcome:
    step: str
    status: str
    seconds: float
    figure: str


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)


def demo_command() -> None:
    """Migrate, seed, load data and a workload, validate, back up, rehearse, archive, review indexes."""
    settings = load_settings()
    outcomes: list[StepOutcome] = []
    failure: DbopsError | None = None
    for name, step in _steps(settings):
        started = time.monotonic()
        try:
            figure = step()
        except DbopsError as error:
            outcomes.append(StepOutcome(name, "FAILED", time.monotonic() - started, error.message))
            failure = error
            break
        outcomes.append(StepOutcome(name, "ok", time.monotonic() - started, figure))
        typer.echo(f"  {name}: {figure}")
    _print_summary(outcomes, settings)
    if failure is not None:
        raise failure


def _steps(settings: Settings) -> list[tuple[str, Callable[[], str]]]:
    url = database_url(settings)
    store = open_store(settings)
    document = load_seed_document(seed_file_path(settings))

    def deploy() -> str:
        report = migrate_and_seed(url, settings, document)
        raise_for_validation(report.validation)
        changed = sum(table.inserted + table.updated for table in report.seed.tables)
        return f"revision {report.migration.revision_after}, {changed} seed row(s) written, seed validated"

    def load_synthetic() -> str:
        plan = SynthPlan(
            users=2_000,
            applications=5_000,
            audit_logs=50_000,
            events=50_000,
            days=365,
            seed=1,
            until=start_of_today(settings.timezone),
        )
        result = synth(url, settings, plan, skip_if_loaded=True)
        if result.already_loaded:
            return "already loaded (seed 1)"
        return f"{sum(result.rows.values()):,} rows at {result.rows_per_second:,.0f} rows/s"

    def workload() -> str:
        return f"{run_app_workload(url, calls=APPLICATION_CALLS):,} statement calls recorded"

    def validate() -> str:
        report = validate_integrity(url, settings, seed_document=document)
        error = integrity_error(report)
        if error is not None:
            raise error
        return f"{len(report.checks)} checks passed, {len(report.warnings)} warning(s)"

    def take_backup() -> str:
        manifest = back_up(url, settings, store, prune_after=False).manifest
        return f"{manifest.backup_id}: {manifest.stored_bytes / 1e6:,.1f} MB stored"

    def rehearse_latest() -> str:
        record = rehearse(settings, store)
        raise_for_failure(record)
        return f"restored, migrated and checked in {record.timings.total:.1f} s"

    def archive() -> str:
        outcomes = [archive_table(url, settings, store, table) for table in ARCHIVED_TABLES]
        return ", ".join(f"{outcome.rows_archived:,} {outcome.table}" for outcome in outcomes) + " archived"

    def review() -> str:
        report = review_indexes(url, settings)
        firm = [finding for finding in report.findings if not finding.tentative]
        workload = sum(1 for finding in report.findings if finding.kind is FindingKind.WORKLOAD_INDEX)
        return (
            f"{len(firm)} finding(s) ({workload} for the workload), "
            f"{len(report.findings) - len(firm)} tentative"
        )

    def verify() -> str:
        report = verify_review(url, settings, store)
        recommended = [f for f in report.findings if f.evidence.get("verdict") == Verdict.RECOMMENDED]
        verdicts = report.verification.verdicts if report.verification else {}
        best = max(recommended, key=lambda f: f.evidence.get("speedup", 0), default=None)
        shown = (
            f" (best {best.measured_ms_before:,.2f} -> {best.measured_ms_after:,.2f} ms)"
            if best is not None and best.measured_ms_before is not None and best.measured_ms_after is not None
            else ""
        )
        others = ", ".join(
            f"{count} {verdict}" for verdict, count in sorted(verdicts.items()) if verdict != "recommended"
        )
        return f"{len(recommended)} index(es) recommended{shown}" + (f"; {others}" if others else "")

    return [
        ("migrate and seed", deploy),
        ("synthetic data", load_synthetic),
        ("application workload", workload),
        ("integrity validation", validate),
        ("backup", take_backup),
        ("restore rehearsal", rehearse_latest),
        ("log archiving", archive),
        ("index review", review),
        ("index advice verified", verify),
    ]


def _print_summary(outcomes: list[StepOutcome], settings: Settings) -> None:
    typer.echo("")
    typer.echo(f"{'step':<22} {'status':<7} {'seconds':>8}  key figure")
    for outcome in outcomes:
        typer.echo(f"{outcome.step:<22} {outcome.status:<7} {outcome.seconds:>8.1f}  {outcome.figure}")
    typer.echo(f"{'total':<22} {'':<7} {sum(o.seconds for o in outcomes):>8.1f}")
    typer.echo("")
    typer.echo("Next:")
    typer.echo(f"  backups and log archive:{settings.effective_backup_url}  (dbops backups)")
    typer.echo("  index advice with SQL: dbops review-indexes (measured on a copy: --verify)")
    typer.echo("  the Prefect UI:        make serve, then http://127.0.0.1:4200")
    typer.echo("  stop the database:     make demo-stop")
