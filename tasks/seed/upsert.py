"""Idempotent seeding of the reference data: the admin, verified universities, their courses and staff.

Reference data (universities, courses) always converges to the seed file. Accounts (the admin and
staff) converge only in development or when asked to (``reset_accounts``): migrate-and-seed runs on
every deploy, and in staging and production it must neither hand back the shared initial password to
someone who changed theirs nor reactivate an account an administrator suspended. There, accounts are
created when missing and otherwise left alone.

Every row is upserted on its natural key (slug, (university, code), email) with
``INSERT ... ON CONFLICT DO UPDATE ... WHERE (columns) IS DISTINCT FROM (new values)``, so a second
run writes nothing, ``updated_at`` moves only on rows whose seed values changed, and the counts of
inserted, updated and unchanged rows come straight from PostgreSQL. The whole seed is one transaction
under a transaction-scoped advisory lock: two seeds at once end as one, without errors.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, literal_column, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError

from models.database_url import describe
from models.errors import SeedError, SeedFileError, SeedRefusedError
from models.results import SeedResult, TableChanges
from models.schema import Course, Role, University, User, UserStatus
from models.seed import BUNDLED_SEED_FILE, SeedDocument, parse_seed_document
from models.settings import Environment, Settings
from tasks.postgres.engine import make_engine, open_connection
from tasks.seed.passwords import check_password_policy, resolve_hash

SEED_LOCK_KEY = int.from_bytes(hashlib.sha256(b"dbops.seed").digest()[:8], "big", signed=True)

_log = logging.getLogger(__name__)


def seed_file_path(settings: Settings) -> Path:
    return settings.seed_file or BUNDLED_SEED_FILE


def load_seed_document(path: Path) -> SeedDocument:
    try:
        text_content = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SeedFileError(
            f"cannot read seed file {path}: {error.strerror}", hint="check DBOPS_SEED_FILE"
        ) from None
    return parse_seed_document(text_content, str(path))


def check_seed_passwords(settings: Settings) -> None:
    """Refuse unsafe passwords before anything is written."""
    production = settings.environment is Environment.PRODUCTION
    if production and settings.admin_password is None:
        raise SeedRefusedError(
            "refusing to seed production without an admin password",
            hint="set DBOPS_ADMIN_PASSWORD (at least 12 characters)",
        )
    for setting, secret in (
        ("DBOPS_ADMIN_PASSWORD", settings.admin_password),
        ("DBOPS_STAFF_PASSWORD", settings.staff_password),
    ):
        if secret is not None:
            check_password_policy(secret.get_secret_value(), setting=setting, production=production)


def accounts_converge(settings: Settings, reset_accounts: bool = False) -> bool:
    """Whether seeded accounts are brought back to the seed's view (password, status, role, names)."""
    return reset_accounts or settings.environment is Environment.DEVELOPMENT


def seed(
    url: URL,
    settings: Settings,
    document: SeedDocument | None = None,
    *,
    reset_accounts: bool = False,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> SeedResult:
    """Upsert the seed file's rows into the database at *url*; return what changed per table.

    *reset_accounts* restores the seed's view of existing accounts outside development too.
    """
    log = logger or _log
    path = seed_file_path(settings)
    document = document or load_seed_document(path)
    check_seed_passwords(settings)
    engine = make_engine(url, settings, purpose="seed")
    try:
        with open_connection(engine) as connection, connection.begin():
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEED_LOCK_KEY})
            changes = _seed_rows(connection, document, settings, accounts_converge(settings, reset_accounts))
    except DBAPIError as error:
        message = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        raise SeedError(
            f"seeding {describe(url)} failed and was rolled back",
            detail=message,
            hint="run dbops migrate first if tables are missing; nothing was written",
        ) from None
    for change in changes:
        log.info(
            "%s: %d inserted, %d updated, %d unchanged",
            change.table,
            change.inserted,
            change.updated,
            change.unchanged,
        )
    return SeedResult(database=describe(url), seed_file=str(path), tables=changes)


def _seed_rows(
    connection: Connection, document: SeedDocument, settings: Settings, converge_accounts: bool
) -> list[TableChanges]:
    universities = [university.model_dump(exclude={"courses"}) for university in document.universities]
    university_changes = upsert(connection, University.__table__, universities, ["slug"])  # type: ignore[arg-type]
    university_ids = dict(
        connection.execute(
            select(University.slug, University.id).where(
                University.slug.in_([u["slug"] for u in universities])
            )
        ).all()
    )

    courses = [
        {
            **course.model_dump(exclude={"metadata"}),
            "metadata": course.metadata,
            "university_id": university_ids[university.slug],
        }
        for university in document.universities
        for course in university.courses
    ]
    course_changes = upsert(connection, Course.__table__, courses, ["university_id", "code"])  # type: ignore[arg-type]

    users = _user_rows(connection, document, settings, university_ids)
    user_changes = upsert(connection, User.__table__, users, ["email"], update=converge_accounts)  # type: ignore[arg-type]
    return [university_changes, course_changes, user_changes]


def _user_rows(
    connection: Connection, document: SeedDocument, settings: Settings, university_ids: Mapping[str, Any]
) -> list[dict[str, Any]]:
    admin_password = settings.admin_password.get_secret_value() if settings.admin_password else None
    staff_password = settings.staff_password.get_secret_value() if settings.staff_password else None
    emails = [settings.admin_email, *(staff.email for staff in document.staff)]
    stored = dict(
        connection.execute(select(User.email, User.password_hash).where(User.email.in_(emails))).all()
    )
    rounds = settings.bcrypt_rounds
    rows = [
        {
            "email": settings.admin_email,
            "password_hash": resolve_hash(admin_password, stored.get(settings.admin_email), rounds),
            "first_name": document.admin.first_name,
            "last_name": document.admin.last_name,
            "role": Role.ADMIN,
            "status": UserStatus.ACTIVE,
            "university_id": None,
        }
    ]
    rows.extend(
        {
            "email": staff.email,
            "password_hash": resolve_hash(staff_password, stored.get(staff.email), rounds),
            "first_name": staff.first_name,
            "last_name": staff.last_name,
            "role": Role.UNIVERSITY,
            "status": UserStatus.ACTIVE,
            "university_id": university_ids[staff.university],
        }
        for staff in document.staff
    )
    return rows


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: list[str],
    *,
    update: bool = True,
) -> TableChanges:
    """Insert *rows*, or (with *update*) update those whose non-key values differ; count what happened.

    ``xmax = 0`` holds exactly for rows this statement inserted; rows the WHERE clause skipped (or,
    without *update*, every existing row) are not returned at all, which makes them "unchanged".
    """
    if not rows:
        return TableChanges(table=table.name)
    proposed = insert(table).values(list(rows))
    values = [column for column in rows[0] if column not in keys]
    statement: Any = (
        proposed.on_conflict_do_update(
            index_elements=keys,
            set_={**{column: proposed.excluded[column] for column in values}, "updated_at": func.now()},
            where=tuple_(*(table.c[column] for column in values)).is_distinct_from(
                tuple_(*(proposed.excluded[column] for column in values))
            ),
        )
        if update
        else proposed.on_conflict_do_nothing(index_elements=keys)
    ).returning(literal_column("xmax = 0"))
    written = [bool(inserted) for (inserted,) in connection.execute(statement)]
    inserted = sum(written)
    return TableChanges(
        table=table.name,
        inserted=inserted,
        updated=len(written) - inserted,
        unchanged=len(rows) - len(written),
    )
