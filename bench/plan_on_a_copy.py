"""The migration plan on a production-sized copy: a rewriting revision measured on a ≥ 1 GB platform database.

Builds a synthetic platform database (``--scale 1.5`` is about 1.2 GB), backs it up into a local store,
adds a revision that rewrites ``audit_logs`` (a column with a volatile default) on top of the code's
head, and runs ``plan_migrations`` on it as ``dbops migrate --plan`` does: restore into a scratch copy,
trace, judge. Prints the database's size, the restore and the plan's timings, the measurement of the
rewriting statement and the verdict, and writes the whole plan as JSON.

    .venv/bin/python bench/plan_on_a_copy.py [--scale 1.5] [--json plan.json]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from harness import synth_database, synth_plan
from pydantic import SecretStr

from models.settings import load_settings
from tasks.backup.dump import backup
from tasks.postgres import driver
from tasks.postgres.binaries import embedded_bindir
from tasks.postgres.embedded import ensure_running, stop
from tasks.schema.migrate import MIGRATIONS_DIR, head_revision
from tasks.schema.plan import plan_migrations
from tasks.storage import open_store

REVISION = '''"""audit logs: when each row was last checked (a volatile default: every row is rewritten)

Revision ID: p001
Revises: {head}
"""
from alembic import op

revision = "p001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE audit_logs ADD COLUMN checked_at timestamptz DEFAULT clock_timestamp()")


def downgrade() -> None:
    op.execute("ALTER TABLE audit_logs DROP COLUMN checked_at")
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.5)
    parser.add_argument("--json", type=Path, default=None)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        base, home = Path(directory) / "pg", Path(directory) / "home"
        server = ensure_running(base, embedded_bindir(), durable=False)
        try:
            url = server.url(synth_database(server, home, synth_plan(arguments.scale)))
            with driver.connect(url, purpose="bench", autocommit=True) as connection:
                size = connection.execute("SELECT pg_database_size(current_database())").fetchone()
            settings = load_settings(
                _env_file=None,
                database_url=SecretStr(url.render_as_string(hide_password=False)),
                home=home,
                backup_url=str(Path(directory) / "store"),
            )
            store = open_store(settings)
            backup(url, settings, store)
            location = Path(directory) / "migrations"
            shutil.copytree(MIGRATIONS_DIR, location, ignore=shutil.ignore_patterns("__pycache__"))
            (location / "versions" / "p001_checked_at.py").write_text(REVISION.format(head=head_revision()))
            started = time.perf_counter()
            measured = plan_migrations(settings, store, script_location=location)
            seconds = time.perf_counter() - started
        finally:
            stop(base, embedded_bindir())
    assert size is not None
    print(f"database {int(str(size[0])) / 1e9:.2f} GB; plan (restore, analyse, trace) {seconds:.1f} s")
    for revision in measured.revisions:
        for statement in revision.statements:
            print(f"  {statement.sql}")
            wal = statement.wal_bytes / 1e6
            print(f"    {statement.seconds:.2f} s, WAL {wal:,.0f} MB, rewrites {statement.rewrites}")
            for lock in statement.locks:
                print(f"    {lock.mode} on {lock.relation}, held {lock.held_seconds:.2f} s")
            for table, blocked in statement.probe_blocked_seconds.items():
                print(f"    probes on {table} blocked: max {blocked.max:.2f} s, total {blocked.total:.2f} s")
        for failure in revision.failures:
            print(f"  FAILS: {failure}")
    exit_code = 0 if measured.verdict == "pass" else 1
    print(f"verdict: {measured.verdict} (dbops migrate --plan would exit {exit_code})")
    if arguments.json is not None:
        arguments.json.write_text(measured.model_dump_json(indent=2))


if __name__ == "__main__":
    main()
