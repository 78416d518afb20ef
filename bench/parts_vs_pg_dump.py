"""Multi-part backups and their streamed restore, against a single pg_dump and a raw pg_restore.

Two databases on one embedded server: ``synth`` (``dbops synth``: several large tables) and
``dominant`` (``pgbench -i``: one table holds nearly everything). For each, interleaved, medians of
``--repeat`` runs, every run a fresh child process (its peak RSS is its own, children included):

- floor F: ``pg_dump -Fc -Z0 > /dev/null``, one process;
- ``dbops backup`` with DBOPS_BACKUP_PARALLELISM 1 and 2, into a local directory, and 2 into moto's S3;
- restore: a raw ``pg_restore -j 2`` of the single-object dump from a local file into an empty
  database, against the restore phase of ``dbops rehearse`` of the parallelism-2 backup;
- a rehearsal of the parallelism-2 backup with DBOPS_RESTORE_WORK_DIR on a 64 MB tmpfs (needs root to
  mount it), and of the single-object one there, which must fail saying how much room it needs.

    .venv/bin/python bench/parts_vs_pg_dump.py [--repeat 3] [--only synth|dominant] [--scale 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import (
    BUCKET,
    floor_command,
    pgbench_tables,
    platform_database,
    start_moto,
    synth_database,
    synth_plan,
)

from models.settings import load_settings
from tasks.backup.catalog import list_backups
from tasks.postgres.binaries import embedded_bindir, find_program
from tasks.postgres.embedded import EmbeddedServer, create_database, ensure_running, stop
from tasks.postgres.libpq import child_environment, conninfo
from tasks.restore.fetch import fetch_dump
from tasks.storage import open_store

CLI = [sys.executable, "-m", "deployments.cli"]


def peak_rss(arguments: list[str], env: dict[str, str]) -> tuple[float, float, str, str, int]:
    """Wall seconds and peak RSS (MiB) of one child and its children, measured in a fresh wrapper
    process so that earlier runs do not count."""
    wrapper = (
        "import resource, subprocess, sys, time, json; t = time.perf_counter(); "
        "p = subprocess.run(sys.argv[1:], capture_output=True); "
        "print(json.dumps([time.perf_counter() - t, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, p.stdout.decode(), "
        "p.stderr.decode()[-1500:], p.returncode, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime "
        "+ resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *arguments], env=env, capture_output=True, check=True
    )
    seconds, rss, out, err, code, cpu = json.loads(done.stdout)
    CLIENT_CPU.append(cpu)
    return seconds, rss, out, err, code


#: CPU seconds of the last run's processes (dbops or pg_dump, and their children).
CLIENT_CPU: list[float] = []


def server_cpu(server: EmbeddedServer) -> float:
    """CPU seconds the server's ended backends used so far: the postmaster reaps each backend when
    its session ends, and the kernel adds the backend's CPU time to the postmaster's cutime and
    cstime. With the client's own CPU, that is the whole work of a run, whatever its parallelism."""
    pid = int((server.data_dir / "postmaster.pid").read_text().splitlines()[0])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def prepare_synth(server: EmbeddedServer, home: Path, scale: float = 1.0) -> str:
    return synth_database(server, home, synth_plan(scale))


def prepare_dominant(server: EmbeddedServer, home: Path) -> str:
    pgbench_tables(platform_database(server, "dominant", home), 40, schema="bench")
    return "dominant"


def bench_database(
    server: EmbeddedServer, database: str, directory: Path, endpoint: str, repeat: int
) -> dict[str, object]:
    url = server.url(database)
    pg_restore = str(find_program("pg_restore", embedded_bindir()))
    with child_environment(url) as pgpass:
        env = {**os.environ, **pgpass}
        dbops = {
            **env,
            "DBOPS_DATABASE_URL": url.render_as_string(hide_password=False),
            "DBOPS_HOME": str(directory),
            "DBOPS_BACKUP_URL": str(directory / f"store-{database}"),
            "DBOPS_BCRYPT_ROUNDS": "4",
        }
        variants: dict[str, tuple[list[str], dict[str, str]]] = {
            "F: pg_dump -Fc -Z0 > /dev/null": (
                floor_command(url),
                env,
            ),
            "dbops backup, parallelism 1, local": (
                [*CLI, "backup", "--no-prune"],
                {**dbops, "DBOPS_BACKUP_PARALLELISM": "1"},
            ),
            "dbops backup, parallelism 2, local": (
                [*CLI, "backup", "--no-prune"],
                {**dbops, "DBOPS_BACKUP_PARALLELISM": "2"},
            ),
            "dbops backup, parallelism 2, moto S3": (
                [*CLI, "backup", "--no-prune"],
                {
                    **dbops,
                    "DBOPS_BACKUP_PARALLELISM": "2",
                    "DBOPS_BACKUP_URL": f"s3://{BUCKET}/{database}",
                    "DBOPS_S3_ENDPOINT_URL": endpoint,
                },
            ),
        }
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for round_number in range(repeat):
            order = list(variants)
            order = order[round_number % len(order) :] + order[: round_number % len(order)]
            for name in order:
                command, environment = variants[name]
                before = server_cpu(server)
                seconds, rss, _, err, code = peak_rss(command, environment)
                time.sleep(0.5)  # the postmaster reaps the run's backends
                assert code == 0, err
                runs[name].append((seconds, rss))
                cpu[name].append(CLIENT_CPU[-1] + server_cpu(server) - before)
        store = open_store(load_settings(_env_file=None, backup_url=str(directory / f"store-{database}")))
        backups = list_backups(store)
        parted = next(manifest for manifest in backups if manifest.parts)
        single = next(manifest for manifest in backups if not manifest.parts)
        unpacked = directory / f"unpacked-{database}"
        unpacked.mkdir()
        settings = load_settings(_env_file=None, home=directory)
        dump = fetch_dump(store, single, settings, unpacked).path
        restores: dict[str, list[tuple[float, float]]] = {"raw pg_restore -j 2": [], "dbops rehearse": []}
        for round_number in range(repeat):
            order = ["raw pg_restore -j 2", "dbops rehearse"]
            for name in order if round_number % 2 == 0 else order[::-1]:
                if name == "dbops rehearse":
                    seconds, rss, out, err, code = peak_rss(
                        [*CLI, "rehearse", "--backup", parted.backup_id, "--json"],
                        {**dbops, "DBOPS_RESTORE_PARALLELISM": "2", "DBOPS_RESTORE_JOBS": "2"},
                    )
                    assert code == 0, err
                    restores[name].append((json.loads(out)["timings"]["restore"], rss))
                else:
                    target = f"raw_{uuid.uuid4().hex[:8]}"
                    create_database(server, target)
                    raw = server.url(target)
                    command = [
                        pg_restore,
                        "--no-password",
                        "-j",
                        "2",
                        "--no-owner",
                        "--dbname",
                        conninfo(raw, purpose="bench"),
                        str(dump),
                    ]
                    with child_environment(raw) as raw_env:
                        seconds, rss, _, err, code = peak_rss(command, {**os.environ, **raw_env})
                    assert code == 0, err
                    restores[name].append((seconds, rss))
                    with child_environment(server.url("postgres")) as admin_env:
                        subprocess.run(
                            [
                                str(find_program("psql", embedded_bindir())),
                                "--no-password",
                                "-q",
                                "-c",
                                f'DROP DATABASE "{target}"',
                                conninfo(server.url("postgres"), purpose="bench"),
                            ],
                            env={**os.environ, **admin_env},
                            check=True,
                        )
        small_disk = _small_disk(dbops, parted.backup_id, single.backup_id)
    return {
        "dump_mb": single.dump_bytes / 1e6,
        "parts": [(part.name, round(part.dump_bytes / 1e6, 1)) for part in parted.parts],
        "backup": runs,
        "backup_cpu": cpu,
        "restore": restores,
        "small_disk": small_disk,
    }


def _small_disk(dbops: dict[str, str], parted: str, single: str) -> dict[str, str]:
    """Rehearse both backups with DBOPS_RESTORE_WORK_DIR on a 64 MB tmpfs; their outcomes."""
    mount = Path(tempfile.mkdtemp(prefix="dbops-64m-"))
    if (
        subprocess.run(
            [shutil.which("mount") or "/bin/mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)]
        ).returncode
        != 0
    ):
        return {"skipped": "could not mount a 64 MB tmpfs (needs root)"}
    try:
        outcomes = {}
        for name, backup_id in (("parts", parted), ("single", single)):
            env = {**dbops, "DBOPS_RESTORE_WORK_DIR": str(mount)}
            _, _rss, out, err, code = peak_rss([*CLI, "rehearse", "--backup", backup_id, "--json"], env)
            outcomes[name] = f"exit {code}: " + (
                "passed" if code == 0 else (json.loads(out).get("failure") if out.strip() else err.strip())
            )
        return outcomes
    finally:
        subprocess.run([shutil.which("umount") or "/bin/umount", str(mount)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--only", choices=["synth", "dominant"], help="Measure one of the two databases (default: both)."
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="Rows of the synth database against the default (peak memory flat?).",
    )
    arguments = parser.parse_args()
    preparations = {
        "synth": lambda server, home: prepare_synth(server, home, arguments.scale),
        "dominant": prepare_dominant,
    }
    chosen = [preparations[arguments.only]] if arguments.only else list(preparations.values())
    moto, endpoint = start_moto()
    results = {}
    with tempfile.TemporaryDirectory(prefix="dbops-bench-") as directory:
        base = Path(directory) / "pg"
        server = ensure_running(base, embedded_bindir())
        try:
            for prepare in chosen:
                database = prepare(server, Path(directory))
                results[database] = bench_database(
                    server, database, Path(directory), endpoint, arguments.repeat
                )
                _report(database, results[database], arguments.repeat)
        finally:
            stop(base, embedded_bindir())
            moto.terminate()


def _report(database: str, result: dict[str, object], repeat: int) -> None:
    print(f"\n{database}: {result['dump_mb']:,.0f} MB dump; parts {result['parts']}")
    backup = result["backup"]
    assert isinstance(backup, dict)
    cpu = result["backup_cpu"]
    assert isinstance(cpu, dict)
    floor = statistics.median(seconds for seconds, _ in backup["F: pg_dump -Fc -Z0 > /dev/null"])
    cores = os.cpu_count() or 1
    for name, runs in backup.items():
        median = statistics.median(seconds for seconds, _ in runs)
        work = statistics.median(cpu[name])
        # No run on this machine can take less wall time than its CPU work spread over every core.
        print(
            f"  {name:<40} {median:6.2f} s  {median / floor:5.2f}x F  "
            f"CPU {work:6.2f} s (at best {work / cores / floor:4.2f}x F on {cores} cores)  "
            f"peak RSS {max(r for _, r in runs):5.0f} MiB"
            f"  runs {[round(seconds, 2) for seconds, _ in runs]}"
        )
    restore = result["restore"]
    assert isinstance(restore, dict)
    raw = statistics.median(seconds for seconds, _ in restore["raw pg_restore -j 2"])
    for name, runs in restore.items():
        median = statistics.median(seconds for seconds, _ in runs)
        print(
            f"  restore: {name:<31} {median:6.2f} s  {median / raw:5.2f}x raw  peak RSS "
            f"{max(r for _, r in runs):5.0f} MiB  runs {[round(seconds, 2) for seconds, _ in runs]}"
        )
    print(f"  64 MB work dir: {result['small_disk']}  (median of {repeat})")


if __name__ == "__main__":
    main()
