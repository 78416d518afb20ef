"""``dbops archive-logs`` end to end: rows archived and deleted per second, and peak memory, at 1M and
3M audit logs older than the cut-off.

Each size gets a fresh database loaded by ``dbops synth`` (rows from 2024, well past the 365-day
retention) and one run of ``dbops archive-logs --table audit_logs`` as a child process, into a local
store: COPY out as JSON Lines, gzip, store, read back and verify, delete, and the final VACUUM. Peak
RSS is the child's own; if it is flat across sizes, memory does not grow with the table.

    .venv/bin/python bench/archive_throughput.py [--sizes 1000000 3000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from models.settings import load_settings
from tasks.postgres.binaries import embedded_bindir
from tasks.postgres.embedded import create_database, ensure_running, stop
from tasks.schema.migrate import migrate
from tasks.seed.synth import synth
from tasks.seed.synth_rows import SynthPlan

REPO_ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000])
    arguments = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        server = ensure_running(home / "pg", embedded_bindir())
        try:
            for size in arguments.sizes:
                database = f"archive_{size}"
                create_database(server, database)
                url = server.url(database)
                settings = load_settings(_env_file=None, home=home)
                migrate(url, settings)
                synth(
                    url,
                    settings,
                    SynthPlan(
                        users=1_000,
                        applications=0,
                        audit_logs=size,
                        events=0,
                        days=180,
                        seed=size,
                        until=datetime(2024, 12, 31, tzinfo=UTC),
                    ),
                )
                environment = {
                    **os.environ,
                    "DBOPS_DATABASE_URL": url.render_as_string(hide_password=False),
                    "DBOPS_BACKUP_URL": str(home / f"store_{size}"),
                    "DBOPS_HOME": str(home),
                }
                started = time.perf_counter()
                child = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "deployments.cli",
                        "archive-logs",
                        "--table",
                        "audit_logs",
                        "--json",
                    ],
                    env=environment,
                    cwd=REPO_ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
                output = child.stdout.read() if child.stdout else b""
                _, status, usage = os.wait4(child.pid, 0)
                wall = time.perf_counter() - started
                assert os.waitstatus_to_exitcode(status) == 0
                (outcome,) = json.loads(output)
                assert outcome["rows_archived"] == size
                results.append((size, wall, outcome, usage.ru_maxrss / 1024))
                print(
                    f"{size:,} rows: {wall:.1f} s wall, {outcome['rows_per_second']:,.0f} rows/s, "
                    f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB"
                )
        finally:
            stop(home / "pg", embedded_bindir())
    print()
    print(f"machine: {os.cpu_count()} cores")
    print(
        f"{'rows':>10} {'wall s':>8} {'rows/s (wall)':>14} {'rows/s (run)':>13} {'stored MB':>10} "
        f"{'table MB before':>16} {'after':>7} {'peak RSS MiB':>13}"
    )
    for size, wall, outcome, rss in results:
        print(
            f"{size:>10,} {wall:>8.1f} {size / wall:>14,.0f} {outcome['rows_per_second']:>13,.0f} "
            f"{outcome['bytes_stored'] / 1e6:>10.1f} {outcome['table_bytes_before'] / 1e6:>16.1f} "
            f"{outcome['table_bytes_after'] / 1e6:>7.1f} {rss:>13.0f}"
        )
    print("target: at least 100,000 rows/s end to end, and peak RSS independent of the row count")


if __name__ == "__main__":
    main()
