"""The restore rehearsal's restore phase against a raw ``pg_restore -j 2`` of the same dump.

One database holds the platform schema (migrated and seeded) and, in a schema of its own, the
``pgbench -i -s 50`` tables (5M accounts). It is backed up once with ``dbops backup`` into a local
store. Then, alternating, ``--repeat`` times each:

- baseline: ``pg_restore -j 2`` of the unpacked dump, from a local file, into an empty database;
- ``dbops rehearse``: the whole rehearsal, whose restore phase is the same dump restored with
  ``--jobs 2`` into a scratch database (plus its download, migrate and validation phases).

The two take turns going first, so neither always meets a cold cache.

Medians and the ratio of the restore phases are printed, with every phase of the rehearsal.

    .venv/bin/python bench/rehearsal_vs_pg_restore.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from harness import pgbench_tables, platform_database
from pydantic import SecretStr

from models.settings import load_settings
from tasks.backup.catalog import list_backups
from tasks.backup.dump import backup
from tasks.postgres.binaries import embedded_bindir, find_program
from tasks.postgres.command import run_pg_program
from tasks.postgres.driver import connect
from tasks.postgres.embedded import EmbeddedServer, ensure_running, stop
from tasks.postgres.libpq import child_environment, conninfo
from tasks.restore.fetch import fetch_dump
from tasks.restore.rehearsal import rehearse
from tasks.storage import open_store


def prepare(server: EmbeddedServer, home: Path) -> None:
    pgbench_tables(platform_database(server, "platform", home), 50, schema="bench")


def raw_pg_restore(server: EmbeddedServer, dump: Path, database: str) -> float:
    with connect(server.url("postgres"), purpose="bench", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}" TEMPLATE template0')
    url = server.url(database)
    started = time.perf_counter()
    with child_environment(url) as environment:
        run_pg_program(
            find_program("pg_restore", embedded_bindir()),
            ["--jobs", "2", "--dbname", conninfo(url, purpose="bench"), str(dump)],
            environment=environment,
        )
    elapsed = time.perf_counter() - started
    with connect(server.url("postgres"), purpose="bench", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        server = ensure_running(home / "pg", embedded_bindir())
        try:
            started = time.perf_counter()
            prepare(server, home)
            print(f"prepared platform + pgbench scale 50 in {time.perf_counter() - started:.0f} s")
            settings = load_settings(
                _env_file=None,
                home=home,
                database_url=SecretStr(server.url("platform").render_as_string(hide_password=False)),
                backup_url=str(home / "backups"),
                restore_jobs=2,
            )
            store = open_store(settings)
            manifest = backup(server.url("platform"), settings, store)
            print(
                f"backup {manifest.backup_id}: {manifest.dump_bytes / 1e6:,.0f} MB dump, "
                f"{manifest.stored_bytes / 1e6:,.0f} MB stored"
            )
            unpacked = home / "unpacked"
            unpacked.mkdir()
            dump = fetch_dump(store, list_backups(store)[0], settings, unpacked).path
            raw: list[float] = []
            phases: dict[str, list[float]] = {}
            for round_number in range(arguments.repeat):
                # Alternate which goes first, so neither always meets a cold cache.
                if round_number % 2:
                    record = rehearse(settings, store)
                    raw.append(raw_pg_restore(server, dump, f"baseline_{round_number}"))
                else:
                    raw.append(raw_pg_restore(server, dump, f"baseline_{round_number}"))
                    record = rehearse(settings, store)
                assert record.passed, record.failure
                for phase, seconds in record.timings.model_dump().items():
                    phases.setdefault(phase, []).append(seconds)
                print(
                    f"round {round_number + 1}: raw pg_restore -j 2 {raw[-1]:.1f} s, "
                    f"rehearsal restore phase {record.timings.restore:.1f} s"
                )
        finally:
            stop(home / "pg", embedded_bindir())
    baseline = statistics.median(raw)
    restore_phase = statistics.median(phases["restore"])
    print()
    print(f"machine: {os.cpu_count()} cores; medians of {arguments.repeat} runs")
    print(f"{'raw pg_restore -j 2 (local file)':<36} {baseline:>8.1f} s")
    for phase, values in phases.items():
        print(f"{'rehearsal: ' + phase:<36} {statistics.median(values):>8.1f} s")
    print(
        f"ratio (rehearsal restore phase / raw pg_restore -j 2): {restore_phase / baseline:.2f}x "
        "(target <= 1.10x)"
    )


if __name__ == "__main__":
    main()
