"""The seed validation, run as one integrity check when the database holds seeded data."""

from __future__ import annotations

from sqlalchemy import select

from models.schema import University
from tasks.integrity.context import CheckContext
from tasks.integrity.outcome import Outcome, outcome_from, skipped
from tasks.seed.validation import run_seed_checks


def seed_invariants(context: CheckContext) -> Outcome:
    document = context.seed_document
    if document is None:
        return skipped("no seed file to compare with")
    slugs = [university.slug for university in document.universities]
    with context.connection() as connection:
        seeded = connection.execute(
            select(University.slug).where(University.slug.in_(slugs)).limit(1)
        ).first()
        if seeded is None:
            return skipped("the database holds no seeded universities; nothing to compare")
        checks = run_seed_checks(connection, context.settings, document)
    failures = [check for check in checks if not check.passed]
    return outcome_from(
        [f"{check.name}: {check.detail}" for check in failures],
        f"{len(checks)} seed checks pass",
        [{"check": check.name, "detail": check.detail} for check in failures],
    )
