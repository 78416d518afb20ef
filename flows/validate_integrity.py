"""``validate-integrity``: the catalogue of integrity checks against any database, with artifacts.

The flow ends Failed when an error-severity check fails and Completed otherwise (warnings included).
The restore rehearsal calls it with the URL of each restored copy.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import URL

from flows.parameters import DatabaseURLParameter, database_url_parameter
from models.integrity import IntegrityReport
from models.settings import Settings, load_settings
from tasks.integrity.runner import raise_for_errors, validate_integrity
from tasks.seed.upsert import load_seed_document, seed_file_path

validate_integrity_task = task(name="validate-integrity", cache_policy=NO_CACHE)(validate_integrity)


@flow(name="validate-integrity")
def validate_integrity_flow(
    database_url: DatabaseURLParameter = None,
) -> IntegrityReport:
    """Run the integrity checks; the run fails when an error-severity check fails.

    Args:
        database_url: Validate this database instead of DBOPS_DATABASE_URL; a URL without
            a password, which the worker supplies (PGPASSWORD or a pgpass file).
    """
    settings = load_settings()
    url = database_url_parameter(settings, "database_url", database_url)
    logger = get_run_logger()
    report = validate_integrity_task(
        url, settings, seed_document=load_seed_document(seed_file_path(settings)), logger=logger
    )
    publish_integrity_report(report)
    raise_for_errors(report)
    return report


def published_validator(settings: Settings) -> Callable[[URL], IntegrityReport]:
    """The integrity checks as a restore runs them on its copy: a task of the calling flow, with
    the artifacts published there."""
    logger = get_run_logger()
    seed_document = load_seed_document(seed_file_path(settings))

    def validate(url: URL) -> IntegrityReport:
        report = validate_integrity_task(url, settings, seed_document=seed_document, logger=logger)
        publish_integrity_report(report)
        return report

    return validate


def publish_integrity_report(report: IntegrityReport) -> None:
    """The report's artifacts (a row per check, and a summary with failing samples) and warnings."""
    create_table_artifact(
        key="integrity-checks",
        table=[
            {
                "check": check.name,
                "severity": check.severity.value,
                "status": check.status.value,
                "seconds": check.elapsed_seconds,
                "detail": check.detail,
            }
            for check in report.checks
        ],
        description=f"Integrity of {report.database} at revision {report.revision}",
    )
    create_markdown_artifact(key="integrity-summary", markdown=report_markdown(report))
    logger = get_run_logger()
    for warning in report.warnings:
        logger.warning("%s: %s", warning.name, warning.detail)


def report_markdown(report: IntegrityReport) -> str:
    verdict = "passed" if report.passed else "**FAILED**"
    warnings = f", {len(report.warnings)} warning(s)" if report.warnings else ""
    lines = [
        f"# Integrity of {report.database}: {verdict}{warnings}",
        "",
        f"PostgreSQL {report.server_version}, revision {report.revision}, "
        f"checked {report.checked_at:%Y-%m-%d %H:%M:%S %Z} in {report.elapsed_seconds:.1f} s of wall time"
        + (f" on {report.parallelism} connections." if report.parallelism else "."),
        "",
        "| check | severity | status | detail |",
        "|---|---|---|---|",
        *(f"| {c.name} | {c.severity.value} | {c.status.value} | {c.detail} |" for c in report.checks),
    ]
    for check in report.checks:
        if check.samples and check.status.value != "passed":
            lines += ["", f"## {check.name}: sample rows", "", "```json"]
            lines += [json.dumps(sample, default=str) for sample in check.samples]
            lines += ["```"]
    lines += ["", "## Row counts", "", "| table | rows |", "|---|---|"]
    lines += [f"| {table} | {rows:,} |" for table, rows in report.row_counts.items()]
    return "\n".join(lines)
