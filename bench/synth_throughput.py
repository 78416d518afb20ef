"""Synthetic load throughput and memory: ``dbops synth`` (COPY) against row-by-row INSERT.

The target is at least 200,000 rows/s overall for 1M audit logs, with flat memory. Each measurement
runs in a fresh child process on a fresh, migrated and seeded database of the embedded server, so
peak RSS belongs to that one load. The baseline is what a hand-written loader usually does: psycopg's
``executemany`` INSERT (pipelined) of the same generated rows.

    .venv/bin/python bench/synth_throughput.py [--repeat 3] [--sizes 250000,1000000,2000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from models.settings import load_settings
from tasks.postgres.binaries import embedded_bindir
from tasks.postgres.embedded import create_database, ensure_running, stop
from tasks.schema.migrate import migrate
from tasks.seed.synth import start_of_today, synth
from tasks.seed.synth_rows import AUDIT_LOG_COLUMNS, SynthPlan, audit_log_rows
from tasks.seed.upsert import seed

USERS, APPLICATIONS = 10_000, 20_000


def child(base_dir: str, mode: str, audit_logs: int) -> dict[str, float]:
    """One measurement in this (fresh) process; prints a JSON line for the parent."""
    import psycopg

    server = ensure_running(Path(base_dir), embedded_bindir())
    settings = load_settings(_env_file=None, home=Path(base_dir), bcrypt_rounds=4)
    url = server.url(f"bench_{uuid.uuid4().hex[:10]}")
    create_database(server, str(url.database))
    migrate(url, settings)
    seed(url, settings)
    plan = SynthPlan(
        users=USERS if mode == "copy" else 0,
        applications=APPLICATIONS if mode == "copy" else 0,
        audit_logs=audit_logs,
        events=0,
        days=365,
        seed=1,
        until=start_of_today("UTC"),
    )
    if mode == "copy":
        result = synth(url, settings, plan)
        rows, seconds = sum(result.rows.values()), result.elapsed_seconds
    else:
        rows_text = b"".join(audit_log_rows(plan, [])).decode().splitlines()
        parameters = [[None if field == "\\N" else field for field in line.split("\t")] for line in rows_text]
        statement = f"INSERT INTO audit_logs ({', '.join(AUDIT_LOG_COLUMNS)}) VALUES (%s, %s, %s, %s, %s, %s)"
        with psycopg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database
        ) as connection:
            started = time.monotonic()
            with connection.cursor() as cursor:
                cursor.executemany(statement, parameters)
            connection.commit()
            rows, seconds = len(parameters), time.monotonic() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rows": rows, "seconds": seconds, "peak_rss_mib": peak_kib / 1024}


def measure(base_dir: str, mode: str, audit_logs: int) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", base_dir, mode, str(audit_logs)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="250000,1000000,2000000")
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        base_dir, mode, audit_logs = arguments.child
        print(json.dumps(child(base_dir, mode, int(audit_logs))))
        return

    sizes = [int(size) for size in arguments.sizes.split(",")]
    with tempfile.TemporaryDirectory() as directory:
        base = str(Path(directory) / "pg")
        ensure_running(Path(base), embedded_bindir())
        try:
            baseline = [measure(base, "insert", arguments.baseline_rows) for _ in range(arguments.repeat)]
            runs = {size: [measure(base, "copy", size) for _ in range(arguments.repeat)] for size in sizes}
        finally:
            stop(Path(base), embedded_bindir())

    baseline_rate = statistics.median(run["rows"] / run["seconds"] for run in baseline)
    print(f"median of {arguments.repeat} runs, fresh database and process each; durable embedded server")
    print(f"{'load':<44} {'rows/s':>10} {'vs INSERT':>10} {'peak RSS':>10}")
    print(
        f"{f'executemany INSERT, {arguments.baseline_rows:,} audit logs':<44} {baseline_rate:>10,.0f} "
        f"{1.0:>9.2f}x {statistics.median(r['peak_rss_mib'] for r in baseline):>7.0f} MiB"
    )
    for size, measured in runs.items():
        rate = statistics.median(run["rows"] / run["seconds"] for run in measured)
        rss = statistics.median(run["peak_rss_mib"] for run in measured)
        label = f"dbops synth, {size:,} audit logs (+{USERS + APPLICATIONS:,})"
        print(f"{label:<44} {rate:>10,.0f} {rate / baseline_rate:>9.2f}x {rss:>7.0f} MiB")


if __name__ == "__main__":
    main()
