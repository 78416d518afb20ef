"""``dbops review-indexes``: index and maintenance advice with the SQL to act on it.

Findings are advice, so the command exits 0 whatever it finds; it exits 1 when the statistics cannot
be read or an applied finding did not take, 2 for bad input (an unknown finding id, say), and 130 when
interrupted (after dropping the index it was half-way through building).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deployments.cli.options import DATABASE_URL_HELP, password_free_url
from models.errors import ConfigurationError
from models.settings import load_settings
from tasks.index_review.apply import apply_finding
from tasks.index_review.render import report_text
from tasks.index_review.runner import review_indexes
from tasks.postgres.engine import resolve_database_url


def register(app: typer.Typer) -> None:
    app.command("review-indexes")(review_indexes_command)


def review_indexes_command(
    database_url: Annotated[str | None, typer.Option("--database-url", help=DATABASE_URL_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    apply: Annotated[
        str | None,
        typer.Option(
            "--apply",
            metavar="FINDING_ID",
            help="Run this one finding's SQL (outside a transaction) and check the result.",
        ),
    ] = None,
    queries: Annotated[
        Path | None,
        typer.Option(
            "--queries",
            metavar="FILE",
            help="Also advise indexes for these SQL statements (';'-separated; '-- calls: N' before one "
            "says how often it runs).",
        ),
    ] = None,
    min_calls: Annotated[
        int | None,
        typer.Option(
            "--min-calls",
            min=1,
            help="Workload advice: leave out statements called fewer times "
            "(default DBOPS_REVIEW_WORKLOAD_MIN_CALLS).",
        ),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Measure the advice on a copy restored from a backup: build each advised index there, "
            "time its statements before and after, and try each advised drop against the workload.",
        ),
    ] = False,
    backup_id: Annotated[
        str | None, typer.Option("--backup", help="With --verify: the backup to restore (default: newest).")
    ] = None,
    min_speedup: Annotated[
        float | None,
        typer.Option(
            "--min-speedup",
            help="With --verify: recommend an index only when its statements measured at least this many "
            "times faster (default DBOPS_REVIEW_MIN_SPEEDUP).",
        ),
    ] = None,
) -> None:
    """Review indexes: unused, redundant, invalid, missing, bloated; sequential scans; slow queries.

    Also advises multi-column indexes for the workload (pg_stat_statements, and --queries).
    """
    if not verify and (backup_id is not None or min_speedup is not None):
        raise ConfigurationError(
            "--backup and --min-speedup choose what --verify measures on and how",
            hint="add --verify, or leave them out",
        )
    if min_speedup is not None and min_speedup <= 1.0:
        raise ConfigurationError(
            f"--min-speedup {min_speedup:g} would recommend an index that measured no faster",
            hint="give a factor above 1, such as 2 (the default)",
        )
    settings = load_settings()
    if min_calls is not None:
        settings = settings.model_copy(update={"review_workload_min_calls": min_calls})
    url = resolve_database_url(settings, password_free_url(database_url))
    if apply is not None:
        applied = apply_finding(url, settings, apply, queries_file=queries)
        for note in applied.cleared:
            typer.echo(f"leftover of an earlier run: {note}")
        typer.echo(
            f"applied {applied.finding.id} in {applied.elapsed_seconds:.2f} s; the review no longer has it"
        )
        for statement in applied.finding.sql:
            typer.echo(f"  ran:  {statement};")
        for statement in applied.finding.undo_sql:
            typer.echo(f"  undo: {statement};")
        return
    if verify:
        from tasks.index_review.verify.run import verify_review
        from tasks.storage import open_store

        report = verify_review(
            url,
            settings,
            open_store(settings),
            backup_id=backup_id,
            min_speedup=min_speedup,
            queries_file=queries,
        )
    else:
        report = review_indexes(url, settings, queries_file=queries)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        for line in report_text(report):
            typer.echo(line)
