"""The migration tracer on real data: what each statement of a revision locks, rewrites and blocks.

Each test adds a revision on top of the project's head, in a copy of the migrations directory, and
traces the upgrade to it on a migrated database with a table of rows of its own.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import URL

from models.plan import judge, verdict
from models.settings import Settings, load_settings
from tasks.backup.dump import backup
from tasks.postgres.embedded import EmbeddedServer
from tasks.schema.migrate import MIGRATIONS_DIR, head_revision
from tasks.schema.plan import plan_migrations
from tasks.schema.tracer import trace_upgrade
from tasks.storage import open_store
from tests.integration.conftest import (
    ManagedDatabase,
    connect,
    flow_run_artifacts,
    point_flows_at,
    run_cli,
    url_string,
)

ROWS = 1_000_000
BIG_ROWS = 3_000_000


def revisions_with(tmp_path: Path, body: str, *, allow: str = "") -> Path:
    """The project's migrations plus one revision on top whose upgrade() is *body*."""
    location = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, location, ignore=shutil.ignore_patterns("__pycache__"))
    head = head_revision()
    lines = [
        '"""a revision under test',
        "",
        "Revision ID: 9001",
        f"Revises: {head}",
        '"""',
        "from alembic import op",
        "",
        'revision = "9001"',
        f'down_revision = "{head}"',
        "branch_labels = None",
        "depends_on = None",
        allow,
        "",
        "def upgrade() -> None:",
        textwrap.indent(textwrap.dedent(body).strip(), "    "),
        "",
        "def downgrade() -> None:",
        "    pass",
    ]
    revision = "\n".join(lines) + "\n"
    (location / "versions" / "9001_under_test.py").write_text(revision)
    return location


def with_ledger(url: URL, rows: int) -> URL:
    with connect(url) as connection:
        connection.execute("CREATE TABLE ledger (id bigint PRIMARY KEY, amount integer NOT NULL)")
        connection.execute(f"INSERT INTO ledger SELECT g, g % 1000 FROM generate_series(1, {rows}) AS g")
        connection.execute("ANALYZE ledger")
    return url


@pytest.fixture
def ledger(migrated_url: URL) -> URL:
    return with_ledger(migrated_url, ROWS)


@pytest.fixture
def big_ledger(migrated_url: URL) -> URL:
    """3M rows: a type change rewrites it under ACCESS EXCLUSIVE for seconds, as on production."""
    return with_ledger(migrated_url, BIG_ROWS)


def test_a_type_change_rewrites_the_table_under_access_exclusive_and_blocks_the_probes(
    big_ledger: URL, settings: Settings, tmp_path: Path
) -> None:
    location = revisions_with(tmp_path, 'op.execute("ALTER TABLE ledger ALTER COLUMN amount TYPE bigint")')

    traced = trace_upgrade(big_ledger, settings, script_location=location)

    assert traced.to_revision == "9001"
    [revision] = traced.revisions
    assert len(revision.statements) == 1, [statement.sql for statement in revision.statements]
    [statement] = revision.statements
    assert statement.rewrites == ["public.ledger", "public.ledger_pkey"], "the table and its index"
    [lock] = [lock for lock in statement.locks if lock.relation == "public.ledger"]
    assert lock.mode == "AccessExclusiveLock"
    assert lock.held_seconds >= statement.seconds
    assert statement.wal_bytes > 1_000_000
    blocked = statement.probe_blocked_seconds["public.ledger"]
    assert blocked.max >= 0.5 * statement.seconds, (blocked, statement.seconds)
    before, after = statement.sizes["public.ledger"]
    assert before > 0
    assert after > 0

    judged = judge(revision, rows=traced.rows, max_lock_seconds=0.01, max_rewrite_mb=1)
    assert verdict([judged]) == "fail"
    assert any("AccessExclusiveLock on public.ledger" in line for line in judged.failures)
    assert any("rewrites public.ledger" in line for line in judged.failures)


def test_an_allowance_declared_by_the_revision_accepts_its_lock_and_rewrite(
    ledger: URL, settings: Settings, tmp_path: Path
) -> None:
    location = revisions_with(
        tmp_path,
        'op.execute("ALTER TABLE ledger ALTER COLUMN amount TYPE bigint")',
        allow='DBOPS_PLAN_ALLOW = {"lock": "a quiet hour", "rewrite": "small enough"}',
    )

    [revision] = trace_upgrade(ledger, settings, script_location=location).revisions

    judged = judge(revision, rows={"public.ledger": ROWS}, max_lock_seconds=0.01, max_rewrite_mb=1)
    assert judged.allowed == {"lock": "a quiet hour", "rewrite": "small enough"}
    assert judged.failures == []
    assert any(line.endswith("(allowed: a quiet hour)") for line in judged.accepted)
    assert any(line.endswith("(allowed: small enough)") for line in judged.accepted)
    assert verdict([judged]) == "pass"


def test_create_index_concurrently_in_an_autocommit_block_holds_no_blocking_lock(
    ledger: URL, settings: Settings, tmp_path: Path
) -> None:
    body = """
    with op.get_context().autocommit_block():
        op.execute("CREATE INDEX CONCURRENTLY ledger_amount ON ledger (amount)")
    """
    location = revisions_with(tmp_path, body)

    [revision] = trace_upgrade(ledger, settings, script_location=location).revisions

    [statement] = revision.statements
    assert statement.rewrites == []
    assert all(lock.mode not in ("ShareLock", "AccessExclusiveLock") for lock in statement.locks)
    assert "public.ledger" not in statement.probe_blocked_seconds
    assert (
        judge(revision, rows={"public.ledger": ROWS}, max_lock_seconds=0.01, max_rewrite_mb=1).failures == []
    )


def test_not_valid_then_a_separate_validate_takes_share_update_exclusive_only(
    ledger: URL, settings: Settings, tmp_path: Path
) -> None:
    body = """
    op.execute("ALTER TABLE ledger ADD CONSTRAINT amount_small CHECK (amount < 1000000) NOT VALID")
    with op.get_context().autocommit_block():
        op.execute("ALTER TABLE ledger VALIDATE CONSTRAINT amount_small")
    """
    location = revisions_with(tmp_path, body)

    [revision] = trace_upgrade(ledger, settings, script_location=location).revisions

    add, validate = revision.statements
    assert [lock.mode for lock in add.locks if lock.relation == "public.ledger"] == ["AccessExclusiveLock"]
    assert add.rewrites == []
    assert validate.rewrites == []
    assert {lock.mode for lock in validate.locks if lock.relation == "public.ledger"} == {
        "ShareUpdateExclusiveLock"
    }
    assert "public.ledger" not in validate.probe_blocked_seconds


def test_the_plan_restores_the_newest_backup_measures_the_revision_and_fails_it(
    ledger: URL, settings: Settings, tmp_path: Path, pg_server: EmbeddedServer
) -> None:
    configured = settings.model_copy(
        update={"backup_url": str(tmp_path / "backups"), "migration_max_rewrite_mb": 10}
    )
    store = open_store(configured)
    backup(ledger, configured, store)
    location = revisions_with(tmp_path, 'op.execute("ALTER TABLE ledger ALTER COLUMN amount TYPE bigint")')

    plan = plan_migrations(configured, store, script_location=location)

    assert plan.verdict == "fail"
    assert (plan.from_revision, plan.to_revision) == (head_revision(), "9001")
    shape = json.loads(plan.model_dump_json())
    assert set(shape) >= {"backup", "from_revision", "to_revision", "verdict", "revisions"}
    [revision] = shape["revisions"]
    assert set(revision) >= {"revision", "seconds", "allowed", "statements"}
    [statement] = revision["statements"]
    assert set(statement) >= {
        "sql",
        "seconds",
        "rows",
        "wal_bytes",
        "rewrites",
        "locks",
        "probe_blocked_seconds",
        "lint",
    }
    assert "public.ledger" in statement["rewrites"]
    assert {"relation": "public.ledger", "mode": "AccessExclusiveLock"} in [
        {"relation": lock["relation"], "mode": lock["mode"]} for lock in statement["locks"]
    ]
    assert any("rewrites public.ledger" in failure for failure in revision["failures"])
    with connect(ledger) as connection:  # production was only read
        assert connection.execute("SELECT version_num FROM alembic_version").fetchone() == (head_revision(),)
        column = connection.execute(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'ledger' AND column_name = 'amount'"
        ).fetchone()
        assert column == ("integer",)
    with connect(pg_server.url("postgres")) as connection:
        assert connection.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'plan\\_%'"
        ).fetchone() == (0,)


def test_the_plan_without_a_backup_exits_2_and_with_nothing_pending_passes(
    migrated_url: URL, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = cli_env | {"DBOPS_BACKUP_URL": str(tmp_path / "backups")}
    missing = run_cli("migrate", "--plan", env=env)
    assert missing.returncode == 2, missing.stderr
    [line] = missing.stderr.strip().splitlines()
    assert line.startswith(f"dbops: error: no backup of {migrated_url.database} to measure the migrations on")

    assert run_cli("backup", env=env).returncode == 0
    planned = run_cli("migrate", "--plan", "--json", env=env)
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["verdict"] == "pass"
    assert plan["revisions"] == []
    assert plan["from_revision"] == plan["to_revision"] == head_revision()


@pytest.mark.usefixtures("prefect_api")
def test_the_flow_publishes_the_plan_as_markdown(
    migrated_url: URL, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.migration_plan import migration_plan_flow

    configured = settings.model_copy(update={"backup_url": str(tmp_path / "backups")})
    backup(migrated_url, configured, open_store(configured))
    point_flows_at(monkeypatch, migrated_url, configured)

    state = migration_plan_flow(return_state=True)

    assert state.is_completed(), state.message
    artifacts = flow_run_artifacts(state.state_details.flow_run_id)
    assert f"Migration plan for `{migrated_url.database}`: ✅ pass" in str(artifacts["migration-plan"])


def test_migrate_and_seed_plan_first_stops_before_touching_the_database_when_the_plan_fails(
    seeded_url: URL, settings: Settings, cli_env: dict[str, str], tmp_path: Path
) -> None:
    from tasks.schema.migrate import migrate

    migrate(seeded_url, settings, target="0001")  # 0002 is pending: it locks courses and applications
    env = cli_env | {"DBOPS_BACKUP_URL": str(tmp_path / "backups"), "DBOPS_BCRYPT_ROUNDS": "4"}
    assert run_cli("backup", env=env).returncode == 0

    strict = run_cli(
        "migrate-and-seed", "--plan-first", env=env | {"DBOPS_MIGRATION_MAX_LOCK_SECONDS": "0.001"}
    )

    assert strict.returncode == 1, strict.stderr
    [line] = [line for line in strict.stderr.splitlines() if line.startswith("dbops: error:")]
    assert "the pending migrations fail the plan on a copy of backup" in line
    assert "AccessExclusiveLock on public.courses" in line
    with connect(seeded_url) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)

    passed = run_cli("migrate-and-seed", "--plan-first", env=env)
    assert passed.returncode == 0, passed.stderr
    with connect(seeded_url) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchone() == (head_revision(),)


def test_the_nightly_rehearsal_of_an_older_backup_records_the_pending_revisions_measured(
    seeded_url: URL, settings: Settings, cli_env: dict[str, str], tmp_path: Path
) -> None:
    from tasks.schema.migrate import migrate

    migrate(seeded_url, settings, target="0001")
    env = cli_env | {"DBOPS_BACKUP_URL": str(tmp_path / "backups"), "DBOPS_BCRYPT_ROUNDS": "4"}
    assert run_cli("backup", env=env).returncode == 0

    rehearsed = run_cli("rehearse", "--json", env=env)

    assert rehearsed.returncode == 0, rehearsed.stderr
    record = json.loads(rehearsed.stdout)
    [revision] = record["pending_revisions"]
    assert revision["revision"] == "0002"
    validations = [statement for statement in revision["statements"] if "VALIDATE" in statement["sql"]]
    assert validations
    assert all(
        lock["mode"] == "ShareUpdateExclusiveLock"
        for statement in validations
        for lock in statement["locks"]
        if lock["relation"] in ("public.courses", "public.applications")
    )
    listed = run_cli("backups", env=env)
    assert "measured 0002 pass" in listed.stdout


def test_a_managed_role_measures_the_pending_revision_on_its_own_copy(
    managed: ManagedDatabase, pg_server: EmbeddedServer
) -> None:
    from tasks.schema.migrate import migrate

    settings = load_settings(_env_file=None, database_url=SecretStr(url_string(managed.url)))
    migrate(managed.url, settings, target="0001")
    assert run_cli("backup", env=managed.env).returncode == 0

    planned = run_cli("migrate", "--plan", "--json", env=managed.env)

    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    [revision] = plan["revisions"]
    assert revision["revision"] == "0002"
    assert all(statement["wal_bytes"] >= 0 for statement in revision["statements"])
    assert any(statement["locks"] for statement in revision["statements"])
