"""Integrity validation time against one sequential ``count(*)`` of the largest table.

The target: on 1M users, 5M applications and 2M audit logs (from ``dbops synth``), the whole
validation takes at most 3 times one ``SELECT count(*)`` over the largest table. Both run on the same
warmed-up, vacuumed database in one run; medians are printed with the ratio.

    .venv/bin/python bench/validation_vs_count.py [--users N] [--applications N] [--audit-logs N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection

from models.seed import BUNDLED_SEED_FILE
from models.settings import load_settings
from tasks.integrity.runner import validate_integrity
from tasks.postgres.binaries import embedded_bindir
from tasks.postgres.embedded import ensure_running, stop
from tasks.postgres.engine import make_engine
from tasks.schema.migrate import migrate
from tasks.seed.synth import synth
from tasks.seed.synth_rows import SynthPlan
from tasks.seed.upsert import load_seed_document, seed

LARGEST_TABLE = text("""
    SELECT relname FROM pg_class
    WHERE relkind = 'r' AND relnamespace = current_schema()::regnamespace
    ORDER BY reltuples DESC LIMIT 1
""")


# A sequential count: one process reading the heap, no index-only shortcut, no parallel workers.
SEQUENTIAL = (
    "max_parallel_workers_per_gather = 0",
    "enable_indexonlyscan = off",
    "enable_indexscan = off",
    "enable_bitmapscan = off",
)


def _timed(connection: Connection, statement: str) -> float:
    started = time.perf_counter()
    connection.execute(text(statement)).scalar_one()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--applications", type=int, default=5_000_000)
    parser.add_argument("--audit-logs", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory) / "pg"
        server = ensure_running(base, embedded_bindir())
        try:
            settings = load_settings(_env_file=None, home=Path(directory), bcrypt_rounds=4)
            url = server.url()
            migrate(url, settings)
            seed(url, settings)
            plan = SynthPlan(
                users=arguments.users,
                applications=arguments.applications,
                audit_logs=arguments.audit_logs,
                events=0,
                days=365,
                seed=1,
                until=datetime(2026, 11, 1, tzinfo=UTC),
            )
            loaded = synth(url, settings, plan)
            print(f"loaded {loaded.rows} in {loaded.elapsed_seconds:.0f} s")
            engine = make_engine(url, settings, purpose="bench", isolation_level="AUTOCOMMIT")
            with engine.connect() as connection:
                # As in production after autovacuum: statistics current, visibility map set.
                connection.execute(text("VACUUM (ANALYZE)"))
                connection.execute(text("VACUUM"))
                largest = connection.execute(LARGEST_TABLE).scalar_one()
            document = load_seed_document(BUNDLED_SEED_FILE)
            validate_integrity(url, settings, seed_document=document)  # warm caches the same way for both

            counts, planner_counts, validations = [], [], []
            for _ in range(arguments.repeat):
                with engine.connect() as connection:
                    planner_counts.append(_timed(connection, f'SELECT count(*) FROM "{largest}"'))
                    for setting in SEQUENTIAL:
                        connection.execute(text(f"SET {setting}"))
                    counts.append(_timed(connection, f'SELECT count(*) FROM "{largest}"'))
                started = time.perf_counter()
                report = validate_integrity(url, settings, seed_document=document)
                validations.append(time.perf_counter() - started)
            assert report.passed, [check.detail for check in report.errors]
        finally:
            stop(base, embedded_bindir())

    count, validation = statistics.median(counts), statistics.median(validations)
    print(f"median of {arguments.repeat} runs each, interleaved, same server, all data in memory")
    print(f"count(*) over {largest}, planner's choice  {statistics.median(planner_counts):8.2f} s")
    print(f"count(*) over {largest}, one sequential scan  {count:8.2f} s  (the baseline)")
    print(f"validate-integrity, 9 checks               {validation:8.2f} s")
    print(f"ratio to the baseline                      {validation / count:8.2f}x  (target <= 3.00x)")
    for check in report.checks:
        print(f"  {check.name:<16} {check.elapsed_seconds:7.2f} s")


if __name__ == "__main__":
    main()
