"""Revision 0002 validates its CHECK constraints without shutting the application out.

A few million applications are loaded at revision 0001, then the upgrade to 0002 runs in a thread
while two other sessions play the application: one samples ``pg_locks`` for as long as
``VALIDATE CONSTRAINT`` scans applications, the other inserts an application with a 1 s
``statement_timeout``. The scan must hold no ACCESS EXCLUSIVE lock on applications, the insert must
return while that same scan is still running, and the migration lock must stay held throughout.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import psycopg
import pytest
from sqlalchemy.engine import URL

from models.errors import MigrationError
from models.results import MigrationResult
from models.settings import Settings
from tasks.schema.lock import MIGRATION_LOCK_KEY
from tasks.schema.migrate import migrate
from tests.integration.conftest import connect

Connection = psycopg.Connection[tuple[object, ...]]

# 3,000 users applying to each of 1,000 courses: 3 million applications, a scan of about 360 MB.
USERS = 3_000
COURSES = 1_000
# A user beyond the loaded ones, whose application to course 1 does not exist yet.
SPARE_USER = USERS + 1
UNIVERSITY_ID = "00000000-0000-0000-0000-000000000001"

CHECK_CONSTRAINTS = (
    "ck_courses_duration_months_positive",
    "ck_courses_tuition_fee_not_negative",
    "ck_applications_decided_after_submitted",
)


def numbered_uuid(sql_integer: str) -> str:
    """SQL for a UUID spelling out an integer: ascending keys, so the rebuilt indexes load in order."""
    return f"lpad(to_hex(CAST({sql_integer} AS bigint)), 32, '0')::uuid"


@dataclass(frozen=True)
class Validation:
    """One run of ``VALIDATE CONSTRAINT`` on applications, as pg_stat_activity shows it."""

    pid: int
    query_start: datetime


@dataclass(frozen=True)
class LockSample:
    """The relation locks on applications, and whether the migration lock was held, at one moment."""

    modes_by_pid: dict[int, set[str]]
    migration_lock_held: bool


def load_applications(url: URL) -> None:
    """Load the users, courses and applications at revision 0001, in one transaction.

    The applications table's keys and indexes are dropped and then rebuilt from their own catalogue
    definitions (PostgreSQL's advice for bulk loads): the load takes about 20 s instead of nearly a
    minute, and the table ends up with exactly the schema revision 0001 gave it.
    """
    with connect(url) as connection, connection.transaction():
        connection.execute(
            "INSERT INTO universities (id, name, slug) VALUES (%s, 'Load University', 'load-university')",
            (UNIVERSITY_ID,),
        )
        connection.execute(
            f"INSERT INTO courses (id, university_id, name, code) "
            f"SELECT {numbered_uuid('n')}, %s, 'Course ' || n, 'C' || n FROM generate_series(1, %s) AS n",
            (UNIVERSITY_ID, COURSES),
        )
        connection.execute(
            f"INSERT INTO users (id, email, password_hash, first_name, last_name) "
            f"SELECT {numbered_uuid('n')}, 'user' || n || '@load.invalid', '!', 'Load', 'User ' || n "
            f"FROM generate_series(1, %s) AS n",
            (SPARE_USER,),
        )
        constraints = connection.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'applications'::regclass AND contype IN ('p', 'u', 'f') "
            "ORDER BY contype = 'f' DESC"
        ).fetchall()
        indexes = connection.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = 'applications'::regclass AND NOT EXISTS "
            "(SELECT FROM pg_constraint WHERE conindid = indexrelid)"
        ).fetchall()
        for name, _ in indexes:
            connection.execute(f"DROP INDEX {name}")
        for name, _ in constraints:
            connection.execute(f"ALTER TABLE applications DROP CONSTRAINT {name}")
        connection.execute(
            f"INSERT INTO applications (id, user_id, course_id, status, submitted_at, decided_at) "
            f"SELECT {numbered_uuid('u * %s + c')}, {numbered_uuid('u')}, {numbered_uuid('c')}, "
            f"'ACCEPTED', timestamptz '2026-09-01' + c * interval '1 minute', "
            f"timestamptz '2026-10-01' + u * interval '1 minute' "
            f"FROM generate_series(1, %s) AS u, generate_series(1, %s) AS c",
            (COURSES, USERS, COURSES),
        )
        for name, definition in reversed(constraints):  # keys before the foreign keys that need them
            connection.execute(f"ALTER TABLE applications ADD CONSTRAINT {name} {definition}")
        for _, definition in indexes:
            connection.execute(str(definition))
    with connect(url) as connection:
        connection.execute("VACUUM ANALYZE applications")


def check_constraints(url: URL) -> dict[str, bool]:
    """The tables' CHECK constraints, each with whether it is validated."""
    with connect(url) as connection:
        rows = connection.execute(
            "SELECT conname, convalidated FROM pg_constraint WHERE contype = 'c' AND conrelid <> 0"
        ).fetchall()
    return {str(name): bool(validated) for name, validated in rows}


def running_validation(observer: Connection) -> Validation | None:
    """The ``VALIDATE CONSTRAINT`` on applications that is running right now, if one is."""
    row = observer.execute(
        "SELECT pid, query_start FROM pg_stat_activity WHERE datname = current_database() "
        "AND state = 'active' AND query LIKE 'ALTER TABLE applications VALIDATE CONSTRAINT %%'"
    ).fetchone()
    if row is None:
        return None
    pid, query_start = row
    assert isinstance(pid, int)
    assert isinstance(query_start, datetime)
    return Validation(pid, query_start)


def sample_locks(observer: Connection) -> LockSample:
    """Who holds which lock on applications, and whether anyone holds the migration lock."""
    modes_by_pid: dict[int, set[str]] = {}
    for pid, mode in observer.execute(
        "SELECT pid, mode FROM pg_locks WHERE locktype = 'relation' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND relation = 'applications'::regclass"
    ):
        assert isinstance(pid, int)
        modes_by_pid.setdefault(pid, set()).add(str(mode))
    unsigned = MIGRATION_LOCK_KEY & 0xFFFF_FFFF_FFFF_FFFF
    held = observer.execute(
        "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = %s::oid AND objid = %s::oid AND objsubid = 1)",
        (unsigned >> 32, unsigned & 0xFFFF_FFFF),
    ).fetchone()
    return LockSample(modes_by_pid, bool(held and held[0]))


def wait_for_validation(observer: Connection, upgrade: Future[MigrationResult]) -> Validation:
    """Poll until the upgrade's scan of applications shows in pg_stat_activity."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        validation = running_validation(observer)
        if validation is not None:
            return validation
        if upgrade.done():
            upgrade.result()  # raises the migration's own error, if it failed
            pytest.fail("the upgrade finished before its VALIDATE on applications was seen running")
        time.sleep(0.002)
    pytest.fail("the upgrade did not reach VALIDATE on applications within 300 s")


def sample_during(observer: Connection, validation: Validation) -> LockSample | None:
    """A lock sample that lies inside *validation*: the same scan was running after it was taken
    (and, as the caller knows, before), or None once the scan has ended."""
    sample = sample_locks(observer)
    return sample if running_validation(observer) == validation else None


def test_validation_holds_no_access_exclusive_lock_and_lets_inserts_through(
    database_url: URL, settings: Settings
) -> None:
    migrate(database_url, settings, target="0001")
    started = time.monotonic()
    load_applications(database_url)
    load_seconds = time.monotonic() - started

    samples: list[LockSample] = []
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        connect(database_url) as observer,
        connect(database_url) as writer,
    ):
        writer.execute("SET statement_timeout = '1s'")
        upgrade_started = time.monotonic()
        upgrade = pool.submit(migrate, database_url, settings, target="0002")
        validation = wait_for_validation(observer, upgrade)
        validation_seen = time.monotonic()
        if sample := sample_during(observer, validation):
            samples.append(sample)

        insert_started = time.monotonic()
        writer.execute(
            "INSERT INTO applications (user_id, course_id) "
            f"VALUES ({numbered_uuid('%s')}, {numbered_uuid('1')})",
            (SPARE_USER,),
        )
        insert_seconds = time.monotonic() - insert_started
        validating_after_insert = running_validation(observer) == validation

        while sample := sample_during(observer, validation):
            samples.append(sample)
        validation_seen_for = time.monotonic() - validation_seen
        result = upgrade.result(timeout=600)
        upgrade_seconds = time.monotonic() - upgrade_started

    held_by_validation = set().union(*(sample.modes_by_pid.get(validation.pid, set()) for sample in samples))
    print(
        f"loaded {USERS * COURSES:,} applications in {load_seconds:.1f} s; the upgrade to 0002 took "
        f"{upgrade_seconds:.2f} s, its VALIDATE on applications was seen running for "
        f"{validation_seen_for:.2f} s; {len(samples)} lock samples, the VALIDATE held "
        f"{sorted(held_by_validation)}; the insert took {insert_seconds * 1000:.1f} ms"
    )
    assert samples, "no lock sample could be taken while VALIDATE ran: load more rows"
    for sample in samples:
        assert all("AccessExclusiveLock" not in modes for modes in sample.modes_by_pid.values()), (
            f"ACCESS EXCLUSIVE held on applications while VALIDATE scanned it: {sample.modes_by_pid}"
        )
        assert sample.modes_by_pid.get(validation.pid) == {"ShareUpdateExclusiveLock"}
        assert sample.migration_lock_held, "the migration lock was released before the upgrade ended"
    assert validating_after_insert, (
        f"the insert took {insert_seconds:.2f} s and returned only after VALIDATE had ended: it waited"
    )
    assert result.revision_after == "0002"
    assert check_constraints(database_url) == dict.fromkeys(CHECK_CONSTRAINTS, True)


def test_a_failed_validation_leaves_0001_and_a_rerun_completes(database_url: URL, settings: Settings) -> None:
    """Validation commits apart from the ADD, so a violating row fails the run after the NOT VALID
    constraints are in; the revision stays 0001 and, once the row is fixed, the same upgrade reruns."""
    migrate(database_url, settings, target="0001")
    with connect(database_url) as connection:
        connection.execute(
            "INSERT INTO universities (id, name, slug) VALUES (%s, 'U', 'u')", (UNIVERSITY_ID,)
        )
        connection.execute(
            "INSERT INTO courses (university_id, name, code, duration_months) VALUES (%s, 'C', 'C', 0)",
            (UNIVERSITY_ID,),
        )

    with pytest.raises(MigrationError) as failure:
        migrate(database_url, settings, target="0002")
    assert "ck_courses_duration_months_positive" in str(failure.value)
    assert check_constraints(database_url) == dict.fromkeys(CHECK_CONSTRAINTS, False)

    with connect(database_url) as connection:
        version = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        assert version == ("0001",)
        connection.execute("UPDATE courses SET duration_months = 12")
    assert migrate(database_url, settings, target="0002").revision_after == "0002"
    assert check_constraints(database_url) == dict.fromkeys(CHECK_CONSTRAINTS, True)
