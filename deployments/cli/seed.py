"""``dbops seed``, ``dbops migrate-and-seed`` and ``dbops synth``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from models.results import SeedResult, SeedValidationReport, ValidationCheck
from models.settings import load_settings
from tasks.postgres.engine import database_url
from tasks.seed.deploy import migrate_and_seed
from tasks.seed.synth import start_of_today, synth
from tasks.seed.synth_rows import SynthPlan
from tasks.seed.upsert import load_seed_document, seed, seed_file_path
from tasks.seed.validation import raise_for_validation, validate_seed


def register(app: typer.Typer) -> None:
    app.command("seed")(seed_command)
    app.command("migrate-and-seed")(migrate_and_seed_command)
    app.command("validate-seed")(validate_seed_command)
    app.command("synth")(synth_command)


RESET_ACCOUNTS_HELP = (
    "Outside development too, bring seeded accounts back to the seed: initial password, ACTIVE, role, "
    "names, university."
)


def seed_command(
    reset_accounts: Annotated[bool, typer.Option("--reset-accounts", help=RESET_ACCOUNTS_HELP)] = False,
) -> None:
    """Upsert the reference data from the seed file, then validate it (exit 1 if validation fails).

    In staging and production, seeded accounts are created when missing and otherwise left alone.
    """
    settings = load_settings()
    url = database_url(settings)
    document = load_seed_document(seed_file_path(settings))
    result = seed(url, settings, document, reset_accounts=reset_accounts)
    validation = validate_seed(url, settings, document)
    _print_seed(result, validation)
    raise_for_validation(validation)


def validate_seed_command() -> None:
    """Check, read-only, that the database holds the seed file's data (exit 1 if not)."""
    settings = load_settings()
    validation = validate_seed(database_url(settings), settings, load_seed_document(seed_file_path(settings)))
    for check in validation.checks:
        typer.echo(f"  [{_shown(check)}] {check.name}: {check.detail}")
    raise_for_validation(validation)


def migrate_and_seed_command(
    reset_accounts: Annotated[bool, typer.Option("--reset-accounts", help=RESET_ACCOUNTS_HELP)] = False,
    plan_first: Annotated[
        bool,
        typer.Option(
            "--plan-first",
            help="First measure the pending migrations on a copy restored from the newest backup, and "
            "stop (exit 1) before touching the database if one fails the limits.",
        ),
    ] = False,
) -> None:
    """Migrate to head under the lock, seed, and validate: the deploy pipeline's one command."""
    settings = load_settings()
    url = database_url(settings)
    document = load_seed_document(seed_file_path(settings))
    if plan_first:
        from tasks.schema.plan import require_passing_plan  # the restore machinery: only this needs it
        from tasks.storage import open_store

        require_passing_plan(settings, open_store(settings))
    report = migrate_and_seed(url, settings, document, reset_accounts=reset_accounts)
    migration = report.migration
    typer.echo(
        f"{migration.database}: schema at {migration.revision_after} ({len(migration.steps)} step(s) applied)"
    )
    _print_seed(report.seed, report.validation)
    raise_for_validation(report.validation)


def synth_command(
    users: Annotated[int, typer.Option(min=0, help="Synthetic students.")] = 1_000,
    applications: Annotated[
        int, typer.Option(min=0, help="Applications (distinct student/course pairs).")
    ] = 2_000,
    audit_logs: Annotated[int, typer.Option(min=0, help="Audit log rows.")] = 10_000,
    events: Annotated[int, typer.Option(min=0, help="Analytics events.")] = 10_000,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Spread timestamps over the last N days.")] = 365,
    seed_value: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same data.")] = 1,
    until: Annotated[
        datetime | None,
        typer.Option(help="End of the time window (default: midnight today, DBOPS_TIMEZONE)."),
    ] = None,
    skip_if_loaded: Annotated[
        bool, typer.Option("--skip-if-loaded", help="Exit 0 without loading when this seed's data is there.")
    ] = False,
) -> None:
    """Load deterministic synthetic volume with COPY (refused when DBOPS_ENVIRONMENT=production)."""
    settings = load_settings()
    end = until or start_of_today(settings.timezone)
    if end.tzinfo is None:
        end = end.replace(tzinfo=start_of_today(settings.timezone).tzinfo)
    plan = SynthPlan(
        users=users,
        applications=applications,
        audit_logs=audit_logs,
        events=events,
        days=days,
        seed=seed_value,
        until=end,
    )
    result = synth(database_url(settings), settings, plan, skip_if_loaded=skip_if_loaded)
    if result.already_loaded:
        typer.echo(
            f"{result.database}: synthetic data for seed {result.seed} is already loaded, nothing to do"
        )
        return
    loaded = ", ".join(f"{count:,} {table}" for table, count in result.rows.items())
    typer.echo(
        f"{result.database}: loaded {loaded} in {result.elapsed_seconds:.2f} s "
        f"({result.rows_per_second:,.0f} rows/s, seed {result.seed})"
    )


def _print_seed(result: SeedResult, validation: SeedValidationReport) -> None:
    typer.echo(f"{result.database}: seeded from {result.seed_file}")
    typer.echo(f"  {'table':<14} {'inserted':>8} {'updated':>8} {'unchanged':>9}")
    for table in result.tables:
        typer.echo(f"  {table.table:<14} {table.inserted:>8} {table.updated:>8} {table.unchanged:>9}")
    for check in validation.checks:
        typer.echo(f"  [{_shown(check)}] {check.name}: {check.detail}")


def _shown(check: ValidationCheck) -> str:
    return check.verdict if check.verdict == "ok" else check.verdict.upper()
