"""``dbops review-indexes --verify``: the review, then its index advice measured on a restored copy.

The target database is only read (the workload, its plans, the catalogue), as the plain review reads
it; every index is built, and every drop tried, on a scratch copy of the newest backup (or the one
named), which is dropped in every outcome.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import URL

from models.index_review import Finding, FindingKind, IndexReviewReport, Verification
from models.settings import Settings
from models.workload import ParameterUse, WorkloadStatement
from tasks.index_review.runner import review_indexes
from tasks.index_review.verify.choice import choose_on_copy
from tasks.index_review.verify.drops import check_drops, statements_on
from tasks.index_review.verify.measure import Baseline, first_line, measure_candidates
from tasks.index_review.verify.sampling import Sampled, Session, sample_parameters
from tasks.index_review.verify.verdicts import DROP_KINDS, count_verdicts, verified_findings
from tasks.index_review.workload.advice import WorkloadAdvice, advise_indexes
from tasks.index_review.workload.needs import tables
from tasks.postgres import driver
from tasks.restore.scratch import scratch_copy
from tasks.storage import ObjectStore

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
_log = logging.getLogger(__name__)


def verify_review(
    url: URL,
    settings: Settings,
    store: ObjectStore,
    *,
    backup_id: str | None = None,
    min_speedup: float | None = None,
    queries_file: Path | None = None,
    logger: Logger | None = None,
) -> IndexReviewReport:
    """Review the database at *url*, then measure the advice on a copy restored from *backup_id*
    (None: the newest backup). Raises :class:`~models.errors.ScratchCopyUnavailableError` when there
    is no backup to restore, before anything is built."""
    log = logger or _log
    speedup = min_speedup if min_speedup is not None else settings.review_min_speedup
    # The copy first: without a backup to restore, nothing else is worth doing.
    with scratch_copy(
        settings,
        store,
        backup_id=backup_id,
        purpose="index verification",
        measuring="verify the index advice on",
        prefix="verify",
        no_backup_hint="take one with dbops backup, or review without --verify",
        source=url,
        logger=log,
    ) as copy:
        advice = advise_indexes(url, settings, queries_file=queries_file, logger=log)
        report = review_indexes(url, settings, logger=log, advice=advice)
        started = time.monotonic()
        options = {
            "plan_cache_mode": "force_custom_plan",
            "statement_timeout": f"{int(settings.review_verify_timeout_seconds * 1000)}ms",
        }
        with driver.connect(
            copy.url, purpose="index verification", autocommit=True, options=options
        ) as session:
            # A restored copy has no statistics and no visibility map: production has both.
            session.execute("VACUUM (ANALYZE)")
            findings = _measured(
                session, copy.url, report, advice, speedup, copy.manifest.backup_id, settings, log
            )
    report.findings = findings
    report.verification = Verification(
        backup=copy.manifest.backup_id,
        runs=settings.review_verify_runs,
        min_speedup=speedup,
        elapsed_seconds=round(time.monotonic() - started, 3),
        verdicts=count_verdicts(findings),
    )
    log.info("verified on a copy of backup %s: %s", copy.manifest.backup_id, report.verification.verdicts)
    return report


def _measured(
    session: Session,
    copy_url: URL,
    report: IndexReviewReport,
    advice: WorkloadAdvice,
    min_speedup: float,
    backup: str,
    settings: Settings,
    log: Logger,
) -> list[Finding]:
    advised = {f.index for f in report.findings if f.kind is FindingKind.WORKLOAD_INDEX}
    candidates = [candidate for candidate in advice.candidates if candidate.name in advised]
    to_drop = [f for f in report.findings if f.kind in DROP_KINDS and f.index and f.table]
    statement_tables = {key: tables(plan) for key, plan in advice.plans.items()}
    rejected: dict[str, str] = {}
    if candidates and not advice.costed:
        # No hypopg: the copy's real indexes cost the candidates and choose the set, as hypopg would.
        planned = [statement for statement in advice.workload if statement.key in advice.plans]
        chosen, refused = choose_on_copy(copy_url, settings, planned, candidates, statement_tables)
        candidates = chosen
        rejected = {candidate.name: f"costed with it built on the copy, {why}" for candidate, why in refused}
    wanted = {key for candidate in candidates for key in candidate.statements}
    wanted |= {key for f in to_drop for key in statements_on(str(f.table), statement_tables)}
    sampled = {
        statement.key: _sample(session, statement, advice.parameter_uses.get(statement.key, []), settings)
        for statement in advice.workload
        if statement.key in wanted
    }
    for key, found in sampled.items():
        if found.reason:
            log.info("statement %s not measured: %s", key, found.reason)
    baseline = Baseline(session, sampled)
    measured = measure_candidates(baseline, candidates, logger=log)
    drops = check_drops(baseline, to_drop, statement_tables)
    return verified_findings(
        report.findings,
        measurements=measured.measurements,
        not_measured_reasons=measured.not_measured,
        not_chosen=rejected,
        notes=measured.notes,
        drops=drops,
        min_speedup=min_speedup,
        backup=backup,
    )


def _sample(
    session: Session, statement: WorkloadStatement, uses: list[ParameterUse], settings: Settings
) -> Sampled:
    try:
        return sample_parameters(session, statement, uses, settings.review_verify_runs)
    except psycopg.Error as error:
        return Sampled(statement, reason=f"its parameters could not be sampled: {first_line(error)}")
