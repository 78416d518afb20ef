"""Load synthetic volume with COPY: realistic, deterministic data for rehearsals and benchmarks.

Rows stream from :mod:`tasks.seed.synth_rows` straight into psycopg's COPY, chunk by chunk, so memory stays
flat whatever the row count. Everything loads in one transaction: a failed load leaves nothing behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from datetime import time as day_start
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex, ExecutableDDLElement

from models.database_url import describe
from models.errors import SeedError, SeedRefusedError, SynthAlreadyLoadedError
from models.results import SynthResult
from models.schema import Base
from models.settings import Environment, Settings
from tasks.postgres.driver import connect
from tasks.seed.synth_rows import (
    APPLICATION_COLUMNS,
    AUDIT_LOG_COLUMNS,
    EVENT_COLUMNS,
    SYNTH_EMAIL_DOMAIN,
    USER_COLUMNS,
    SynthPlan,
    application_rows,
    audit_log_rows,
    event_rows,
    user_ids,
    user_rows,
)

_POSTGRESQL: Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]


#: Below this many rows, keeping indexes and keys in place is cheaper than rebuilding them.
BULK_REBUILD_MIN_ROWS = 100_000

_log = logging.getLogger(__name__)


def start_of_today(timezone: str) -> datetime:
    """The default end of the synthetic time window: midnight today, so reruns on a day match."""
    zone = ZoneInfo(timezone)
    return datetime.combine(datetime.now(zone).date(), day_start(0), tzinfo=zone)


def synth(
    url: URL,
    settings: Settings,
    plan: SynthPlan,
    *,
    skip_if_loaded: bool = False,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> SynthResult:
    """Load *plan*'s rows. Data for the same seed already there is an error, or with *skip_if_loaded*
    a no-op, which makes a demo or a CI setup step safe to rerun."""
    log = logger or _log
    if settings.environment is Environment.PRODUCTION:
        raise SeedRefusedError(
            "refusing to load synthetic data into a production database",
            hint="synthetic data is for development and staging; check DBOPS_ENVIRONMENT",
        )
    started = time.monotonic()
    rows: dict[str, int] = {}
    try:
        _load(url, settings, plan, rows, log)
    except SynthAlreadyLoadedError:
        if not skip_if_loaded:
            raise
        return SynthResult(
            database=describe(url), seed=plan.seed, rows={}, elapsed_seconds=0, already_loaded=True
        )
    except psycopg.Error as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SeedError(
            f"the synthetic load into {describe(url)} failed and was rolled back",
            detail=message,
            hint="nothing was loaded; fix the cause and rerun dbops synth",
        ) from None
    return SynthResult(
        database=describe(url),
        seed=plan.seed,
        rows=rows,
        elapsed_seconds=round(time.monotonic() - started, 3),
    )


def _load(
    url: URL,
    settings: Settings,
    plan: SynthPlan,
    rows: dict[str, int],
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> None:
    with (
        connect(url, purpose="synth", connect_timeout=settings.connect_timeout_seconds) as connection,
        connection.transaction(),
    ):
        university_ids, course_ids = _reference_ids(connection)
        _refuse_reload(connection, plan)
        ids = user_ids(plan)
        actors = [*ids, *_existing_user_ids(connection)]
        loads: list[tuple[str, Sequence[str], Iterable[bytes], int]] = [
            ("users", USER_COLUMNS, user_rows(plan, ids, university_ids), plan.users),
            ("applications", APPLICATION_COLUMNS, _applications(plan, ids, course_ids), plan.applications),
            ("audit_logs", AUDIT_LOG_COLUMNS, audit_log_rows(plan, actors), plan.audit_logs),
            ("analytics_events", EVENT_COLUMNS, event_rows(plan, actors, university_ids), plan.events),
        ]
        for table, columns, chunks, count in loads:
            if count:
                table_started = time.monotonic()
                _copy(connection, table, columns, chunks, count)
                rows[table] = count
                log.info("%s: %d rows in %.2f s", table, count, time.monotonic() - table_started)
        if rows:
            # A bulk load leaves the planner guessing until autovacuum gets round to it; the first
            # queries (and the index review's statistics) should not have to wait for that.
            connection.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(map(sql.Identifier, rows))))


def _reference_ids(connection: psycopg.Connection[tuple[object, ...]]) -> tuple[list[str], list[str]]:
    try:
        universities = [
            str(row[0]) for row in connection.execute("SELECT id FROM universities ORDER BY slug")
        ]
        courses = [
            str(row[0])
            for row in connection.execute(
                "SELECT c.id FROM courses AS c JOIN universities AS u ON u.id = c.university_id "
                "ORDER BY u.slug, c.code"
            )
        ]
    except psycopg.errors.UndefinedTable:
        raise SeedError("the schema is missing", hint="run dbops migrate-and-seed first") from None
    return universities, courses


def _applications(plan: SynthPlan, ids: Sequence[str], course_ids: Sequence[str]) -> Iterable[bytes]:
    if plan.applications and not course_ids:
        raise SeedRefusedError(
            "synthetic applications need courses, and there are none", hint="run dbops seed first"
        )
    try:
        return application_rows(plan, ids, course_ids)
    except ValueError as error:
        raise SeedRefusedError(str(error), hint="ask for fewer applications or more users") from None


def _refuse_reload(connection: psycopg.Connection[tuple[object, ...]], plan: SynthPlan) -> None:
    if plan.users and connection.execute("SELECT 1 FROM users WHERE email = %s", (plan.email(0),)).fetchone():
        raise SynthAlreadyLoadedError(
            f"synthetic data for seed {plan.seed} is already loaded",
            hint="use another --seed, or load into a fresh database",
        )


def _existing_user_ids(connection: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Seeded (non-synthetic) users, so audit logs also name real actors."""
    return [
        str(row[0])
        for row in connection.execute(
            "SELECT id FROM users WHERE email NOT LIKE %s ORDER BY email", (f"%@{SYNTH_EMAIL_DOMAIN}",)
        )
    ]


def _copy(
    connection: psycopg.Connection[tuple[object, ...]],
    table: str,
    columns: Sequence[str],
    chunks: Iterable[bytes],
    rows: int,
) -> None:
    """COPY *chunks* into *table*; for a load larger than the table, rebuild its indexes and keys after.

    PostgreSQL's own advice for populating a database: maintaining a btree per row and checking a
    foreign key per row cost more than building the index once and validating the key with one join.
    Both are recreated from the models inside this transaction, so a failed load rolls back to the
    exact schema it started from.
    """
    model_table = Base.metadata.tables[table]
    rebuild = rows >= BULK_REBUILD_MIN_ROWS and rows >= _estimated_rows(connection, table)
    secondary_indexes = [index for index in model_table.indexes if not index.unique] if rebuild else []
    foreign_keys = list(model_table.foreign_key_constraints) if rebuild else []
    for key in foreign_keys:
        connection.execute(_ddl(DropConstraint(key)))
    for index in secondary_indexes:
        connection.execute(_ddl(DropIndex(index)))
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for chunk in chunks:
            copy.write(chunk)
    for index in secondary_indexes:
        connection.execute(_ddl(CreateIndex(index)))
    for key in foreign_keys:
        connection.execute(_ddl(AddConstraint(key)))


def _estimated_rows(connection: psycopg.Connection[tuple[object, ...]], table: str) -> int:
    row = connection.execute(
        "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", (table,)
    ).fetchone()
    estimate = int(str(row[0])) if row is not None else -1
    if estimate >= 0:
        return estimate
    counted = connection.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return int(str(counted[0])) if counted is not None else 0


def _ddl(element: ExecutableDDLElement) -> bytes:
    return str(element.compile(dialect=_POSTGRESQL)).encode()
