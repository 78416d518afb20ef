"""``restore-copies``: the weekly look at the databases restores leave on the server.

Drops set-aside and rolled-back copies past ``DBOPS_RESTORE_KEEP_SET_ASIDE_DAYS`` and whatever killed
runs left behind, then publishes every database dbops made on the server, with its size and age,
so their cost is seen before the disk fills.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.reporting import BestEffort
from models.marks import SweepReport
from models.settings import load_settings
from tasks.postgres.engine import database_url
from tasks.restore.leftovers import dbops_databases, sweep
from tasks.restore.runs import run_id


@flow(name="restore-copies")
def restore_copies_flow() -> SweepReport:
    """Drop expired set-aside copies and killed runs' leftovers; list every database dbops made."""
    settings = load_settings()
    logger = get_run_logger()
    server = database_url(settings).set(database="postgres")
    report = sweep(server, settings, run=run_id(), logger=logger)
    made = dbops_databases(server, settings)
    total = sum(database.bytes for database in made)
    BestEffort(logger)(
        "restore copies",
        lambda: create_table_artifact(
            key="restore-copies",
            table=[
                {
                    "database": database.name,
                    "kind": database.kind.value,
                    "target": database.target,
                    "backup": database.backup,
                    "MB": round(database.bytes / 1e6, 1),
                    "made": database.created.isoformat(timespec="seconds"),
                    "sessions": database.sessions,
                    "run": "alive" if database.alive else "gone",
                    "interrupted": database.interrupted or "",
                }
                for database in made
            ],
            description=f"{len(made)} database(s) made by dbops, {total / 1e6:,.1f} MB in all; "
            f"{len(report.dropped)} dropped by this run"
            + (
                f"; {len(report.recovered)} interrupted restore(s) finished or undone"
                if report.recovered
                else ""
            ),
        ),
    )
    return report
