"""Seed validation: does the database hold what the seed file and settings say it should?

The checks of the original operations guide, run read-only: the admin exists with the expected role
and status (and password, when one is configured); seeded universities exist, are verified and have
unique slugs; staff users are linked to the university the seed names; every seeded course exists
with the seed's attributes.

Accounts follow the seed's rule (:func:`tasks.seed.upsert.accounts_converge`): outside development
the configured passwords are initial ones, so a changed password is fine, and an account changed by
an administrator (suspended, moved) is a warning, not a failure. A missing account, or an admin
account that is not ADMIN, fails everywhere.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import URL, Connection

from models.database_url import describe
from models.errors import SeedValidationError
from models.results import SeedValidationReport, ValidationCheck
from models.schema import Course, Role, University, User, UserStatus
from models.seed import SeedDocument
from models.settings import Settings
from tasks.postgres.engine import make_engine, open_connection
from tasks.seed.passwords import password_matches
from tasks.seed.upsert import accounts_converge

COURSE_ATTRIBUTES = (
    "name",
    "degree_level",
    "duration_months",
    "tuition_fee",
    "language",
    "description",
    "is_active",
    "metadata",
)


def validate_seed(url: URL, settings: Settings, document: SeedDocument) -> SeedValidationReport:
    engine = make_engine(url, settings, purpose="validate seed")
    with open_connection(engine, autocommit=True) as connection:
        checks = run_seed_checks(connection, settings, document)
    return SeedValidationReport(database=describe(url), checks=checks)


def run_seed_checks(
    connection: Connection, settings: Settings, document: SeedDocument
) -> list[ValidationCheck]:
    strict = accounts_converge(settings)
    return [
        _admin(connection, settings, strict),
        _universities_verified(connection, document),
        _slugs_unique(connection),
        _staff_linked(connection, document, strict),
        _courses_match(connection, document),
    ]


def _admin(connection: Connection, settings: Settings, strict: bool) -> ValidationCheck:
    row = connection.execute(
        select(User.role, User.status, User.password_hash).where(User.email == settings.admin_email)
    ).first()
    name = "admin account"
    if row is None:
        return ValidationCheck(name=name, passed=False, detail=f"no user {settings.admin_email}")
    role, status, password_hash = row
    if role is not Role.ADMIN:
        return ValidationCheck(name=name, passed=False, detail=f"role is {role.value}, expected ADMIN")
    problems = []
    if status is not UserStatus.ACTIVE:
        problems.append(f"status is {status.value}, expected ACTIVE")
    if (
        strict
        and settings.admin_password is not None
        and not password_matches(settings.admin_password.get_secret_value(), password_hash)
    ):
        problems.append("password does not match DBOPS_ADMIN_PASSWORD")
    detail = "; ".join(problems) or f"{settings.admin_email} is an active ADMIN"
    return _verdict(name, problems, detail, strict)


def _verdict(name: str, problems: list[str], detail: str, strict: bool) -> ValidationCheck:
    """A failure where accounts converge to the seed; elsewhere a warning, for a person to judge."""
    if not problems or strict:
        return ValidationCheck(name=name, passed=not problems, detail=detail)
    return ValidationCheck(name=name, passed=True, warning=True, detail=detail)


def _universities_verified(connection: Connection, document: SeedDocument) -> ValidationCheck:
    slugs = [university.slug for university in document.universities]
    verified = dict(
        connection.execute(
            select(University.slug, University.is_verified).where(University.slug.in_(slugs))
        ).all()
    )
    missing = [slug for slug in slugs if slug not in verified]
    unverified = [slug for slug in slugs if verified.get(slug) is False]
    problems = ([f"missing: {', '.join(missing)}"] if missing else []) + (
        [f"not verified: {', '.join(unverified)}"] if unverified else []
    )
    detail = "; ".join(problems) or f"{len(slugs)} universities present and verified"
    return ValidationCheck(name="universities verified", passed=not problems, detail=detail)


def _slugs_unique(connection: Connection) -> ValidationCheck:
    normalised = func.lower(func.trim(University.slug))
    repeated = (
        connection.execute(
            select(normalised).group_by(normalised).having(func.count() > 1).order_by(normalised)
        )
        .scalars()
        .all()
    )
    detail = f"repeated slugs: {', '.join(repeated)}" if repeated else "every slug is unique"
    return ValidationCheck(name="university slugs unique", passed=not repeated, detail=detail)


def _staff_linked(connection: Connection, document: SeedDocument, strict: bool) -> ValidationCheck:
    rows = {
        email: (role, slug)
        for email, role, slug in connection.execute(
            select(User.email, User.role, University.slug)
            .outerjoin(University, University.id == User.university_id)
            .where(User.email.in_([staff.email for staff in document.staff]))
        )
    }
    missing = [staff.email for staff in document.staff if staff.email not in rows]
    if missing:
        return ValidationCheck(name="staff linked", passed=False, detail=f"missing: {', '.join(missing)}")
    problems = []
    for staff in document.staff:
        role, slug = rows[staff.email]
        if role is not Role.UNIVERSITY:
            problems.append(f"{staff.email} has role {role.value}")
        if slug != staff.university:
            problems.append(
                f"{staff.email} is linked to {slug or 'no university'}, expected {staff.university}"
            )
    detail = "; ".join(problems) or f"{len(document.staff)} staff user(s) linked as seeded"
    return _verdict("staff linked", problems, detail, strict)


def _courses_match(connection: Connection, document: SeedDocument) -> ValidationCheck:
    columns = [getattr(Course, "metadata_" if name == "metadata" else name) for name in COURSE_ATTRIBUTES]
    stored: dict[tuple[str, str], dict[str, Any]] = {
        (row[0], row[1]): dict(zip(COURSE_ATTRIBUTES, row[2:], strict=True))
        for row in connection.execute(
            select(University.slug, Course.code, *columns).join(
                University, University.id == Course.university_id
            )
        )
    }
    problems = []
    for university in document.universities:
        for course in university.courses:
            found = stored.get((university.slug, course.code))
            if found is None:
                problems.append(f"{university.slug}/{course.code} missing")
                continue
            expected = course.model_dump(include=set(COURSE_ATTRIBUTES))
            differing = [name for name in COURSE_ATTRIBUTES if not _same(found[name], expected[name])]
            if differing:
                problems.append(f"{university.slug}/{course.code} differs in {', '.join(differing)}")
    seeded = sum(len(university.courses) for university in document.universities)
    detail = (
        "; ".join(problems)
        or f"{seeded} seeded courses present across {len(document.universities)} universities"
    )
    return ValidationCheck(name="courses match seed", passed=not problems, detail=detail)


def _same(stored: Any, expected: Any) -> bool:
    if isinstance(stored, Decimal) or isinstance(expected, Decimal):
        return stored is not None and expected is not None and Decimal(stored) == Decimal(expected)
    return bool(stored == expected)


def raise_for_validation(report: SeedValidationReport) -> None:
    if not report.passed:
        failed = "; ".join(f"{check.name}: {check.detail}" for check in report.failures)
        raise SeedValidationError(
            f"seed validation failed on {report.database}",
            detail=failed,
            hint="rerun dbops seed; if it persists, something outside the seed changed these rows",
        )
