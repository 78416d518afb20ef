"""The ``dbops`` command line.

Exit codes a deploy pipeline can rely on: 0 success, 1 the operation ran and failed (or found a
problem), 2 bad input or configuration, or the database is unreachable. Errors are one line on stderr,
never a traceback; every dbops error says what to do next.
"""

from __future__ import annotations

import logging
import sys
import warnings

import typer

from deployments.cli import alerts, archive, backup, demo, restore, review, schema, seed, serve, validate
from models.errors import DbopsError

app = typer.Typer(
    name="dbops",
    help="Operations for the university platform's PostgreSQL database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
schema.register(app)
seed.register(app)
validate.register(app)
backup.register(app)
review.register(app)
restore.register(app)
archive.register(app)
serve.register(app)
demo.register(app)
alerts.register(app)


def main() -> None:
    """Console-script entry point: run the app and turn dbops errors into one line and an exit code.

    Click, in standalone mode, already handles usage errors (exit 2) and explicit exits; dbops errors
    propagate out of it and are printed here without a traceback.
    """
    warnings.filterwarnings("ignore", module="platformdirs")
    _configure_logging()
    try:
        app()
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
