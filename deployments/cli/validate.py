"""``dbops validate``: the integrity checks, as a table or JSON; exit 1 when an error-severity check fails."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from deployments.cli.options import DATABASE_URL_HELP, password_free_url
from models.integrity import IntegrityReport
from models.settings import load_settings
from tasks.integrity.runner import integrity_error, validate_integrity
from tasks.postgres.engine import resolve_database_url
from tasks.seed.upsert import load_seed_document, seed_file_path


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)


def validate_command(
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help=DATABASE_URL_HELP),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run the integrity checks: constraints, orphans, enums, indexes, seed invariants, amcheck."""
    settings = load_settings()
    url = resolve_database_url(settings, password_free_url(database_url))
    report = validate_integrity(url, settings, seed_document=load_seed_document(seed_file_path(settings)))
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _print_table(report)
    error = integrity_error(report)
    if error is not None:
        typer.echo(f"dbops: error: {error.one_line()}", err=True)
        raise typer.Exit(1)


def _print_table(report: IntegrityReport) -> None:
    typer.echo(f"{report.database} (PostgreSQL {report.server_version}, revision {report.revision})")
    typer.echo(f"  {'check':<16} {'severity':<8} {'status':<8} {'seconds':>7}  detail")
    for check in report.checks:
        typer.echo(
            f"  {check.name:<16} {check.severity.value:<8} {check.status.value:<8} "
            f"{check.elapsed_seconds:>7.2f}  {check.detail}"
        )
        if check.status.value != "passed":
            for sample in check.samples[:3]:
                typer.echo(f"      {json.dumps(sample, default=str)}")
    verdict = "passed" if report.passed else "FAILED"
    counts = f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)"
    typer.echo(
        f"{verdict}: {counts} in {report.elapsed_seconds:.2f} s (wall time, {report.parallelism} "
        "connections; each check's seconds are its own work)"
    )
