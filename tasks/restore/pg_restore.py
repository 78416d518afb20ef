"""Run pg_restore into a database: parallel, stopping at the first error, password via PGPASSFILE."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sqlalchemy.engine import URL

from tasks.postgres.binaries import Program
from tasks.postgres.command import run_pg_program
from tasks.postgres.libpq import child_environment, conninfo


def restore_arguments(target: URL, *, jobs: int | None, keep_ownership: bool) -> list[str]:
    """pg_restore's arguments for *target*; without *jobs* it reads one archive from standard input.

    ``--exit-on-error`` makes any failed statement fail the restore instead of a warning at the end.
    A rehearsal passes ``keep_ownership=False``: its server may lack the source's roles.
    """
    arguments = ["--dbname", conninfo(target, purpose="pg_restore"), "--exit-on-error"]
    if jobs is not None:
        arguments += ["--jobs", str(jobs)]
    if not keep_ownership:
        arguments += ["--no-owner", "--no-privileges"]
    return arguments


def restore_dump(
    dump: Path,
    target: URL,
    pg_restore: Program,
    *,
    jobs: int,
    keep_ownership: bool,
    timeout_seconds: float,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    entries: Path | None = None,
) -> float:
    """Restore the custom-format *dump* into the (empty) database at *target*; seconds taken.

    With *entries* (a ``--use-list`` file), only the entries it names. Past *timeout_seconds*
    pg_restore is stopped and the restore fails, rather than hold its slot forever.
    """
    selection = ["--use-list", str(entries)] if entries is not None else []
    arguments = [*restore_arguments(target, jobs=jobs, keep_ownership=keep_ownership), *selection, str(dump)]
    started = time.monotonic()
    with child_environment(target) as environment:
        run_pg_program(
            pg_restore.path,
            arguments,
            environment=environment,
            timeout_seconds=timeout_seconds,
            logger=logger,
        )
    return round(time.monotonic() - started, 3)
