"""``dbops validate``: the integrity checks, as a table or JSON; exit 1 when an error-severity check fails."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from pydantic import SecretStr

from models.database_url import parse_database_url
from models.errors import ConfigurationError
from models.integrity import IntegrityReport
from models.settings import load_settings
from tasks.database import resolve_database_url
from tasks.integrity.runner import integrity_error, validate_integrity
from tasks.seed import load_seed_document, seed_file_path


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)


def validate_command(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Validate this database (no password: it comes from PGPASSWORD or a pgpass file).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run the integrity checks: constraints, orphans, enums, indexes, seed invariants, amcheck."""
    settings = load_settings()
    override = _password_free(database_url) if database_url is not None else None
    url = resolve_database_url(settings, override)
    report = validate_integrity(url, settings, seed_document=load_seed_document(seed_file_path(settings)))
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _print_table(report)
    error = integrity_error(report)
    if error is not None:
        typer.echo(f"dbops: error: {error.one_line()}", err=True)
        raise typer.Exit(1)


def _password_free(raw: str) -> SecretStr:
    """Command lines are visible to every user of the machine: a password does not belong on one."""
    try:
        url = parse_database_url(raw, setting="--database-url")
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    if url.password:
        raise ConfigurationError(
            "--database-url must not contain a password: command lines are visible in the process list",
            hint="drop the password from the URL and put it in PGPASSWORD or a pgpass file (PGPASSFILE)",
        )
    return SecretStr(raw)


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
    typer.echo(f"{verdict}: {counts} in {report.elapsed_seconds:.2f} s")
