"""``index-review``: advice on indexes and table maintenance, published as artifacts.

A finding never fails the run (it is advice for a person to weigh); only a failure to read the
statistics does, because a review missing them would look clean when it is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from flows.parameters import DatabaseURLParameter, database_url_parameter
from models.index_review import IndexReviewReport
from models.settings import load_settings
from tasks.index_review.render import (
    report_markdown,
    table_rows,
    verification_line,
    verification_rows,
)
from tasks.index_review.runner import review_indexes
from tasks.index_review.verify.run import verify_review
from tasks.storage import open_store

review_indexes_task = task(name="review-indexes", cache_policy=NO_CACHE)(review_indexes)
verify_review_task = task(name="verify-index-advice", cache_policy=NO_CACHE)(verify_review)


@flow(name="index-review")
def index_review_flow(
    database_url: DatabaseURLParameter = None,
    queries_file: str | None = None,
    min_calls: Annotated[int | None, Field(ge=1)] = None,
    verify: bool = False,
    backup_id: str | None = None,
    min_speedup: Annotated[float | None, Field(gt=1.0)] = None,
) -> IndexReviewReport:
    """Review indexes and table maintenance; findings are advice, each with the SQL to act on it.

    Args:
        database_url: Review this database instead of DBOPS_DATABASE_URL; a URL without
            a password, which the worker supplies (PGPASSWORD or a pgpass file).
        queries_file: A file of SQL statements, on the worker, to advise indexes for besides the
            workload pg_stat_statements recorded.
        min_calls: Workload advice: leave out statements called fewer times
            (default DBOPS_REVIEW_WORKLOAD_MIN_CALLS).
        verify: Measure the advice on a scratch copy restored from a backup: each advised index
            built there and its statements timed before and after, each advised drop tried against
            the workload. The reviewed database is only read.
        backup_id: With verify: the backup to restore; empty: the newest.
        min_speedup: With verify: recommend an index only when its statements measured at least
            this many times faster (default DBOPS_REVIEW_MIN_SPEEDUP).
    """
    settings = load_settings()
    if min_calls is not None:
        settings = settings.model_copy(update={"review_workload_min_calls": min_calls})
    url = database_url_parameter(settings, "database_url", database_url)
    queries = Path(queries_file) if queries_file else None
    if verify:
        report = verify_review_task(
            url,
            settings,
            open_store(settings),
            backup_id=backup_id or None,
            min_speedup=min_speedup,
            queries_file=queries,
            logger=get_run_logger(),
        )
        create_table_artifact(
            key="index-review-verification",
            table=verification_rows(report),
            description=verification_line(report) or "",
        )
    else:
        report = review_indexes_task(url, settings, logger=get_run_logger(), queries_file=queries)
    create_table_artifact(
        key="index-review-findings",
        table=table_rows(report),
        description=f"Index review of {report.database}: {len(report.findings)} finding(s)",
    )
    create_markdown_artifact(key="index-review", markdown=report_markdown(report))
    return report
