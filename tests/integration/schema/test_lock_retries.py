"""A revision whose DDL meets a held table lock: retried alone with a backoff, then one line naming the
holder; revisions committed before it are never run again."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import URL

from models.errors import TableLockTimeoutError
from models.settings import Settings
from tasks.schema import migrate as migrate_module
from tasks.schema.lock_waits import longest_total_backoff
from tasks.schema.migrate import migrate
from tests.integration.conftest import ManagedDatabase, connect, run_cli
from tests.integration.schema.test_migrate import alembic_versions, one_error_line

LOCK_TIMEOUT = 0.5
RETRIES = 2
# Every attempt waits lock_timeout, the pauses between them add up to at most this; the rest is slack
# for connecting and running the revisions.
WORST_CASE = (RETRIES + 1) * LOCK_TIMEOUT + longest_total_backoff(RETRIES)

THIRD_REVISION = '''"""statistics target on users.email

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE users ALTER COLUMN email SET STATISTICS 500")


def downgrade() -> None:
    op.execute("ALTER TABLE users ALTER COLUMN email SET STATISTICS -1")
'''


def hold_access_exclusive(url: URL, table: str) -> psycopg.Connection[tuple[object, ...]]:
    """Another session's open transaction holding *table* in ACCESS EXCLUSIVE mode."""
    holder = connect(url)
    holder.autocommit = False
    holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return holder


def impatient_env(env: dict[str, str]) -> dict[str, str]:
    return env | {
        "DBOPS_DDL_LOCK_TIMEOUT_SECONDS": str(LOCK_TIMEOUT),
        "DBOPS_MIGRATION_LOCK_RETRIES": str(RETRIES),
    }


def assert_retried_then_named_the_holder(url: URL, env: dict[str, str]) -> None:
    """With the DDL's table held by another session, ``dbops migrate`` retries 0002, fails with one
    line naming the holder within its bound, and succeeds once the holder commits."""
    holder = hold_access_exclusive(url, "courses")
    holder_pid = holder.info.backend_pid
    try:
        started = time.monotonic()
        blocked = run_cli("migrate", env=impatient_env(env))
        elapsed = time.monotonic() - started
    finally:
        holder.commit()
        holder.close()

    assert blocked.returncode == 1, blocked.stderr
    line = one_error_line(blocked.stderr)
    assert "revision 0002 could not take its table lock" in line
    assert f"blocked by pid {holder_pid}," in line
    assert "holding AccessExclusiveLock on courses" in line
    assert "SQLSTATE 55P03" in line
    assert f"in {RETRIES + 1} attempt(s)" in line
    assert blocked.stderr.count("waited 0.5 s for a table lock") == RETRIES
    # The command's own start-up (imports, connecting) is the slack on top of the worst case.
    assert elapsed < WORST_CASE + 15
    assert alembic_versions(url) == ["0001"]

    done = run_cli("migrate", env=impatient_env(env))
    assert done.returncode == 0, done.stderr
    assert "upgrade 0001 -> 0002" in done.stdout
    assert alembic_versions(url) == ["0002"]


def test_a_held_table_lock_is_retried_then_reported_naming_its_holder(
    settings: Settings, database_url: URL, cli_env: dict[str, str]
) -> None:
    migrate(database_url, settings, target="0001")
    assert_retried_then_named_the_holder(database_url, cli_env)


def test_the_retries_wait_no_longer_than_their_bound(settings: Settings, database_url: URL) -> None:
    migrate(database_url, settings, target="0001")
    impatient = settings.model_copy(
        update={"ddl_lock_timeout_seconds": LOCK_TIMEOUT, "migration_lock_retries": RETRIES}
    )
    holder = hold_access_exclusive(database_url, "applications")
    holder_pid = holder.info.backend_pid
    try:
        started = time.monotonic()
        with pytest.raises(TableLockTimeoutError) as failure:
            migrate(database_url, impatient)
        elapsed = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()

    assert f"pid {holder_pid}" in str(failure.value)
    assert failure.value.exit_code == 1
    assert LOCK_TIMEOUT * (RETRIES + 1) <= elapsed < WORST_CASE + 3


def test_a_non_superuser_migration_names_the_holder_too(managed: ManagedDatabase) -> None:
    downgraded = run_cli("migrate", "--to", "0001", env=managed.env)
    assert downgraded.returncode == 0, downgraded.stderr
    assert_retried_then_named_the_holder(managed.url, managed.env)


def test_revisions_committed_before_the_blocked_one_are_not_run_again(
    settings: Settings, database_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0002 commits, 0003 meets the held lock; the next run applies 0003 alone."""
    migrations = tmp_path / "migrations"
    shutil.copytree(migrate_module.MIGRATIONS_DIR, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "20261203_0003_users_email_statistics.py").write_text(THIRD_REVISION)
    monkeypatch.setattr(migrate_module, "MIGRATIONS_DIR", migrations)
    migrate(database_url, settings, target="0001")
    impatient = settings.model_copy(
        update={"ddl_lock_timeout_seconds": LOCK_TIMEOUT, "migration_lock_retries": 1}
    )

    holder = hold_access_exclusive(database_url, "users")
    try:
        with pytest.raises(TableLockTimeoutError) as failure:
            migrate(database_url, impatient)
    finally:
        holder.commit()
        holder.close()
    assert "revision 0003 could not take its table lock" in str(failure.value)
    assert alembic_versions(database_url) == ["0002"]
    with connect(database_url) as connection:
        first_applied = connection.execute(
            "SELECT applied_at FROM dbops_applied_revisions WHERE revision = '0002'"
        ).fetchone()

    result = migrate(database_url, impatient)

    assert [step.split(":")[0] for step in result.steps] == ["upgrade 0003"]
    assert alembic_versions(database_url) == ["0003"]
    with connect(database_url) as connection:
        assert (
            connection.execute(
                "SELECT applied_at FROM dbops_applied_revisions WHERE revision = '0002'"
            ).fetchone()
            == first_applied
        )
