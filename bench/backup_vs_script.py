"""``dbops backup`` against the usual pg_dump-to-S3 script, and against the floor of a logical dump.

Side by side, in one run, against moto's S3 server over HTTP, on two databases: about 1 GB of
realistic rows from ``dbops synth`` (JSON payloads, text, timestamps), and ``pgbench -i -s 50``.

- baseline A, the usual script: ``pg_dump -Fc`` (its default gzip) piped into one ``upload_fileobj``;
- floor F, the physical limit of a logical dump: ``pg_dump -Fc -Z0 > /dev/null``;
- ``dbops backup``, at the default zstd level 1 and at level 3.

Each run is a fresh child process, so its peak RSS is its own; TMPDIR points at an empty directory
whose largest size during the run is reported, to show nothing dump-sized is spooled to disk.

    .venv/bin/python bench/backup_vs_script.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
from harness import BUCKET, floor_command, pgbench_tables, start_moto, synth_database

from tasks.postgres.binaries import embedded_bindir, find_program
from tasks.postgres.embedded import EmbeddedServer, create_database, ensure_running, stop
from tasks.postgres.libpq import child_environment, conninfo
from tasks.seed.synth_rows import SynthPlan


def baseline_script(url_env: dict[str, str], dbname_conninfo: str, endpoint: str, bucket: str) -> int:
    """What most pg_dump-to-S3 scripts do: pg_dump -Fc | aws s3 cp - (here: boto3's upload_fileobj)."""
    dump = subprocess.Popen(
        [
            str(find_program("pg_dump", embedded_bindir())),
            "--no-password",
            "-Fc",
            "--dbname",
            dbname_conninfo,
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, **url_env},
    )
    client = boto3.client("s3", endpoint_url=endpoint)
    assert dump.stdout is not None
    client.upload_fileobj(dump.stdout, bucket, f"baseline/{uuid.uuid4().hex}.dump")
    assert dump.wait() == 0
    return 0


def run_child(arguments: list[str], env: dict[str, str], temp_dir: Path) -> dict[str, float]:
    """Run one measurement as a child process; wall time, its peak RSS, the largest TMPDIR seen."""
    largest = [0]
    done = threading.Event()

    def watch_temp() -> None:
        while not done.is_set():
            size = sum(path.stat().st_size for path in temp_dir.rglob("*") if path.is_file())
            largest[0] = max(largest[0], size)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_temp)
    watcher.start()
    started = time.perf_counter()
    process = subprocess.Popen(
        arguments, env={**env, "TMPDIR": str(temp_dir)}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    done.set()
    watcher.join()
    output = process.stdout.read().decode() if process.stdout else ""
    assert os.waitstatus_to_exitcode(status) == 0, output
    return {"seconds": elapsed, "peak_rss_mib": usage.ru_maxrss / 1024, "temp_mib": largest[0] / 2**20}


def prepare_synth(server: EmbeddedServer, home: Path) -> str:
    plan = SynthPlan(
        users=100_000,
        applications=300_000,
        audit_logs=4_000_000,
        events=1_500_000,
        days=365,
        seed=1,
        until=datetime(2026, 11, 1, tzinfo=UTC),
    )
    return synth_database(server, home, plan)


def prepare_pgbench(server: EmbeddedServer) -> str:
    create_database(server, "pgbench")
    pgbench_tables(server.url("pgbench"), 50)
    return "pgbench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-child", nargs=3, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.baseline_child:
        conninfo_text, endpoint, bucket = arguments.baseline_child
        sys.exit(baseline_script({}, conninfo_text, endpoint, bucket))

    moto, endpoint = start_moto()
    bucket = BUCKET
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory) / "pg"
        server = ensure_running(base, embedded_bindir())
        try:
            databases = [prepare_synth(server, Path(directory)), prepare_pgbench(server)]
            for database in databases:
                url = server.url(database)
                with child_environment(url) as pgpass:
                    env = {**os.environ, **pgpass}
                    dbops_env = {
                        **env,
                        "DBOPS_DATABASE_URL": url.render_as_string(hide_password=False),
                        "DBOPS_BACKUP_URL": f"s3://{bucket}/{database}",
                        "DBOPS_S3_ENDPOINT_URL": endpoint,
                        "DBOPS_HOME": directory,
                    }
                    variants = {
                        "A: pg_dump -Fc | upload_fileobj": [
                            sys.executable,
                            __file__,
                            "--baseline-child",
                            conninfo(url, purpose="bench"),
                            endpoint,
                            bucket,
                        ],
                        "F: pg_dump -Fc -Z0 > /dev/null": floor_command(url),
                        "dbops backup": [sys.executable, "-m", "deployments.cli", "backup", "--no-prune"],
                        "dbops backup, zstd level 3": [
                            sys.executable,
                            "-m",
                            "deployments.cli",
                            "backup",
                            "--no-prune",
                        ],
                    }
                    environments = {
                        name: dbops_env if name.startswith("dbops backup") else env for name in variants
                    }
                    environments["dbops backup, zstd level 3"] = {
                        **dbops_env,
                        "DBOPS_BACKUP_COMPRESSION_LEVEL": "3",
                        "DBOPS_BACKUP_URL": f"s3://{bucket}/{database}-level3",
                    }
                    results[database] = {name: [] for name in variants}
                    for _ in range(arguments.repeat):
                        for name, command in variants.items():
                            temp_dir = Path(tempfile.mkdtemp(dir=directory))
                            results[database][name].append(run_child(command, environments[name], temp_dir))
                    sizes = _stored_sizes(endpoint, bucket, [database, f"{database}-level3"])
                    results[database]["A: pg_dump -Fc | upload_fileobj"][0]["stored"] = sizes["baseline"]
                    results[database]["dbops backup"][0]["stored"] = sizes[database]
                    results[database]["dbops backup, zstd level 3"][0]["stored"] = sizes[f"{database}-level3"]
        finally:
            stop(base, embedded_bindir())
            moto.terminate()
    _report(results, arguments.repeat)


def _stored_sizes(endpoint: str, bucket: str, prefixes: list[str]) -> dict[str, float]:
    """Median stored size of the baseline's objects (then deleted) and of the dumps under each prefix."""
    client = boto3.client("s3", endpoint_url=endpoint)
    objects = client.list_objects_v2(Bucket=bucket)["Contents"]
    sizes = {
        "baseline": statistics.median(item["Size"] for item in objects if item["Key"].startswith("baseline/"))
    }
    for prefix in prefixes:
        sizes[prefix] = statistics.median(
            item["Size"]
            for item in objects
            if item["Key"].startswith(f"{prefix}/") and "dump.pgcustom" in item["Key"]
        )
    for item in objects:
        if item["Key"].startswith("baseline/"):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    return sizes


def _report(results: dict[str, dict[str, list[dict[str, float]]]], repeat: int) -> None:
    print(f"median of {repeat} runs each, interleaved; moto S3 over HTTP on loopback")
    for database, variants in results.items():
        baseline = statistics.median(run["seconds"] for run in variants["A: pg_dump -Fc | upload_fileobj"])
        floor = statistics.median(run["seconds"] for run in variants["F: pg_dump -Fc -Z0 > /dev/null"])
        print(f"\n{database}")
        header = f"{'variant':<34} {'seconds':>8} {'vs A':>6} {'vs F':>6} {'stored MB':>10}"
        print(f"  {header} {'peak RSS':>9} {'TMPDIR':>8}")
        for name, runs in variants.items():
            seconds = statistics.median(run["seconds"] for run in runs)
            rss = max(run["peak_rss_mib"] for run in runs)
            temp = max(run["temp_mib"] for run in runs)
            stored = runs[0].get("stored")
            stored_text = f"{stored / 1e6:10.1f}" if stored else f"{'-':>10}"
            print(
                f"  {name:<34} {seconds:8.1f} {seconds / baseline:5.2f}x {seconds / floor:5.2f}x "
                f"{stored_text} {rss:6.0f}MiB {temp:5.1f}MiB"
            )
        a_size = variants["A: pg_dump -Fc | upload_fileobj"][0]["stored"]
        for name in ("dbops backup", "dbops backup, zstd level 3"):
            print(f"  stored size, {name} / A: {variants[name][0]['stored'] / a_size:.2f}x")


if __name__ == "__main__":
    main()
