"""The ``dbops`` command line.

Exit codes a deploy pipeline can rely on: 0 success, 1 the operation ran and failed (or found a
problem), 2 bad input or configuration, or the database is unreachable. Errors are one line on stderr,
never a traceback; every dbops error says what to do next.

Each command's module is imported only when that command runs (see ``deployments.cli.lazy``), so
``dbops --help`` and the quick commands start without Prefect, Alembic, psycopg or boto3.
"""

from __future__ import annotations

import logging
import sys
import warnings

import typer
from typer.core import TyperGroup

from deployments.cli.lazy import StandIn, Subcommand
from models.errors import DbopsError

#: Every command, in the order ``dbops --help`` lists them, with the module that defines it.
SUBCOMMANDS: dict[str, Subcommand] = {
    "migrate": Subcommand(
        "schema", "Upgrade (or downgrade) the database to a revision, under the migration lock."
    ),
    "check": Subcommand("schema", "Compare the models with the live database; exit 1 on drift."),
    "status": Subcommand("schema", "Show the schema's revision and each table's rows, indexes and size."),
    "db-url": Subcommand(
        "database",
        "Print the database URL dbops uses, password masked (starts the embedded server if needed).",
    ),
    "embedded-stop": Subcommand(
        "database", "Stop the embedded PostgreSQL server under DBOPS_HOME, if it is running."
    ),
    "seed": Subcommand(
        "seed", "Upsert the reference data from the seed file, then validate it (exit 1 if validation fails)."
    ),
    "migrate-and-seed": Subcommand(
        "seed", "Migrate to head under the lock, seed, and validate: the deploy pipeline's one command."
    ),
    "validate-seed": Subcommand(
        "seed", "Check, read-only, that the database holds the seed file's data (exit 1 if not)."
    ),
    "synth": Subcommand(
        "seed", "Load deterministic synthetic volume with COPY (refused when DBOPS_ENVIRONMENT=production)."
    ),
    "validate": Subcommand(
        "validate",
        "Run the integrity checks: constraints, orphans, enums, indexes, seed invariants, amcheck.",
    ),
    "backup": Subcommand(
        "backup",
        "Dump the database in a consistent snapshot into the backup store, then apply the retention policy.",
    ),
    "backups": Subcommand(
        "backup", "List complete backups (those with a manifest), newest first, with their latest rehearsal."
    ),
    "prune": Subcommand(
        "backup", "Apply the retention policy (DBOPS_BACKUP_KEEP_*) to the complete backups."
    ),
    "pin": Subcommand("backup", "Keep a backup from every prune until it is unpinned, with the reason why."),
    "unpin": Subcommand("backup", "Let the retention policy judge a pinned backup again."),
    "review-indexes": Subcommand(
        "review",
        "Review indexes: unused, redundant, invalid, missing, bloated; sequential scans; slow queries.",
    ),
    "rehearse": Subcommand(
        "restore",
        "Restore a backup into a scratch database, migrate it, check it, compare counts, then drop it.",
    ),
    "restore": Subcommand(
        "restore",
        "Restore a backup over a database (swap keeps the old one for --rollback), "
        "then migrate and check it.",
    ),
    "restore-tables": Subcommand(
        "tables",
        "Restore chosen tables' rows from a backup into a new schema; --merge inserts the missing ones.",
    ),
    "archive-logs": Subcommand(
        "archive", "Move rows older than the retention to the object store, verified before they are deleted."
    ),
    "restore-archive": Subcommand(
        "archive", "Re-import archived rows (ids already present are skipped), for an audit."
    ),
    "serve": Subcommand(
        "serve",
        "Serve the deployments (nightly backup, weekly maintenance, restore, ...) against PREFECT_API_URL.",
    ),
    "demo": Subcommand(
        "demo",
        "Migrate, seed, load data and a workload, validate, back up, rehearse, archive, review indexes.",
    ),
    "alerts": Subcommand("alerts", "Failure alerts for the scheduled runs."),
}


def command_line() -> TyperGroup:
    """The ``dbops`` group, holding a stand-in for each command until it runs.

    Built as a group directly: ``typer.Typer`` builds one only from commands registered up front. It
    is the group Typer built before, without shell completion (it was off) and with Python's own
    traceback for an unexpected error (Typer's pretty one was off).
    """
    return TyperGroup(
        name="dbops",
        help="Operations for the university platform's PostgreSQL database.",
        no_args_is_help=True,
        commands=[StandIn(name, subcommand) for name, subcommand in SUBCOMMANDS.items()],
    )


def main() -> None:
    """Console-script entry point: run the command line and turn dbops errors into one line and an exit code.

    Click, in standalone mode, already handles usage errors (exit 2) and explicit exits; dbops errors
    propagate out of it and are printed here without a traceback.
    """
    warnings.filterwarnings("ignore", module="platformdirs")
    _configure_logging()
    try:
        command_line()()
    except DbopsError as error:
        typer.echo(f"dbops: error: {error.one_line()}", err=True)
        sys.exit(error.exit_code)


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    for name in ("tasks", "flows", "dbops"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.propagate = False
