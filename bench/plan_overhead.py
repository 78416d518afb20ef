"""What the migration plan's tracer costs: ``trace_upgrade`` against a bare ``alembic upgrade``.

Both apply the same pending revisions to identical copies of one database (``CREATE DATABASE ...
TEMPLATE``, so the restore a plan also does is left out, as the target says): a revision that
rewrites a table of ``--rows`` rows, builds an index concurrently, and adds a constraint NOT VALID
then validates it. The baseline is Alembic's own ``command.upgrade`` on a connection, with no lock,
no timeouts and no tracer. Rounds alternate the two, so a noisy machine slows both alike; prints the
medians and the traced/bare ratio.

    .venv/bin/python bench/plan_overhead.py [--rows 2000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine
from sqlalchemy.engine import URL

from models.settings import load_settings
from tasks.postgres import driver
from tasks.postgres.binaries import embedded_bindir
from tasks.postgres.embedded import EmbeddedServer, create_database, ensure_running, stop
from tasks.schema.migrate import MIGRATIONS_DIR, alembic_config, head_revision, migrate
from tasks.schema.tracer import trace_upgrade

REVISION = '''"""bench: a rewrite, an index built concurrently, a constraint validated apart

Revision ID: b001
Revises: {head}
"""
from alembic import op

revision = "b001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE ledger ALTER COLUMN amount TYPE bigint")
    op.execute("ALTER TABLE ledger ADD CONSTRAINT amount_small CHECK (amount < 1000000) NOT VALID")
    with op.get_context().autocommit_block():
        op.execute("CREATE INDEX CONCURRENTLY ledger_amount ON ledger (amount)")
        op.execute("ALTER TABLE ledger VALIDATE CONSTRAINT amount_small")


def downgrade() -> None:
    pass
'''


def revisions(directory: Path) -> Path:
    location = directory / "migrations"
    shutil.copytree(MIGRATIONS_DIR, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "b001_bench.py").write_text(REVISION.format(head=head_revision()))
    return location


def template(server: EmbeddedServer, rows: int) -> str:
    """A database at the code's head with a ``ledger`` of *rows* rows, to copy for each round."""
    name = f"bench_template_{uuid.uuid4().hex[:8]}"
    create_database(server, name)
    migrate(server.url(name), load_settings(_env_file=None))
    with driver.connect(server.url(name), purpose="bench", autocommit=True) as connection:
        connection.execute("CREATE TABLE ledger (id bigint PRIMARY KEY, amount integer NOT NULL)")
        connection.execute(f"INSERT INTO ledger SELECT g, g % 1000 FROM generate_series(1, {rows}) AS g")
        connection.execute("VACUUM ANALYZE ledger")
    return name


def copy_of(server: EmbeddedServer, source: str) -> URL:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with driver.connect(server.url("postgres"), purpose="bench", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    return server.url(name)


def bare(url: URL, location: Path) -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        config = alembic_config(connection)
        config.set_main_option("script_location", str(location))
        command.upgrade(config, "heads")
    engine.dispose()


def traced(url: URL, location: Path) -> None:
    trace_upgrade(url, load_settings(_env_file=None), script_location=location)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory) / "pg"
        server = ensure_running(base, embedded_bindir(), durable=False)
        try:
            location = revisions(Path(directory))
            source = template(server, arguments.rows)
            timings: dict[str, list[float]] = {"bare": [], "traced": []}
            for _ in range(arguments.repeat):
                for label, job in (("bare", bare), ("traced", traced)):
                    url = copy_of(server, source)
                    started = time.perf_counter()
                    job(url, location)
                    timings[label].append(time.perf_counter() - started)
        finally:
            stop(base, embedded_bindir())
    plain, measured = statistics.median(timings["bare"]), statistics.median(timings["traced"])
    print(f"rows {arguments.rows:,}, {arguments.repeat} interleaved rounds (medians)")
    print(f"  bare alembic upgrade   {plain:8.2f} s")
    print(f"  traced (dbops plan)    {measured:8.2f} s")
    print(f"  ratio traced / bare    {measured / plain:8.2f}x")


if __name__ == "__main__":
    main()
