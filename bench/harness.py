"""What the benchmarks share: the databases they measure on, and moto's S3 server.

Imported as a sibling: each benchmark runs as ``.venv/bin/python bench/NAME.py``, which puts this
folder first on the module path.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
from sqlalchemy.engine import URL

from models.settings import load_settings
from tasks.postgres.binaries import embedded_bindir, find_program
from tasks.postgres.command import run_pg_program
from tasks.postgres.driver import connect
from tasks.postgres.embedded import EmbeddedServer, create_database, free_port
from tasks.postgres.libpq import child_environment, conninfo
from tasks.schema.migrate import migrate
from tasks.seed.synth import synth
from tasks.seed.synth_rows import SynthPlan
from tasks.seed.upsert import seed

BUCKET = "bench"
#: Runs the program in its arguments with stdout thrown away, as a fresh child whose peak RSS is its own.
_DISCARD_STDOUT = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL))"


def platform_database(server: EmbeddedServer, name: str, home: Path) -> URL:
    """A new database *name* at the head revision, seeded, as a deploy leaves it."""
    create_database(server, name)
    url = server.url(name)
    settings = load_settings(_env_file=None, home=home, bcrypt_rounds=4)
    migrate(url, settings)
    seed(url, settings)
    return url


def synth_plan(scale: float = 1.0) -> SynthPlan:
    """The synthetic platform volume the backup and plan benchmarks share; 1.0 is about 0.8 GB."""
    return SynthPlan(
        users=int(100_000 * scale),
        applications=int(300_000 * scale),
        audit_logs=int(2_000_000 * scale),
        events=int(1_000_000 * scale),
        days=365,
        seed=1,
        until=datetime(2026, 11, 1, tzinfo=UTC),
    )


def synth_database(server: EmbeddedServer, home: Path, plan: SynthPlan, name: str = "synth") -> str:
    """A platform database holding *plan*'s synthetic volume; returns its name."""
    synth(platform_database(server, name, home), load_settings(_env_file=None, home=home), plan)
    return name


def pgbench_tables(url: URL, scale: int, *, schema: str | None = None) -> None:
    """``pgbench -i -s SCALE`` into *url*: one table holding nearly every row. In *schema* when given
    (created here), beside the platform's tables: in public they would be drift to the integrity
    checks a rehearsal runs."""
    environment_extra: dict[str, str] = {}
    if schema is not None:
        with connect(url, purpose="bench", autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
        environment_extra["PGOPTIONS"] = f"-c search_path={schema}"
    with child_environment(url) as environment:
        run_pg_program(
            find_program("pgbench", embedded_bindir()),
            ["-i", "-s", str(scale), "-q", conninfo(url, purpose="bench")],
            environment={**environment, **environment_extra},
        )


def floor_command(url: URL) -> list[str]:
    """Floor F, the physical limit of a logical dump: ``pg_dump -Fc -Z0 > /dev/null``, one process,
    nothing compressed or stored."""
    pg_dump = str(find_program("pg_dump", embedded_bindir()))
    dump = [pg_dump, "--no-password", "-Fc", "-Z0", "--dbname", conninfo(url, purpose="bench")]
    return [sys.executable, "-c", _DISCARD_STDOUT, *dump]


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server on a free port, with bucket :data:`BUCKET`; returns it and its endpoint.

    Waits until it accepts connections, rather than for a fixed time that a slow machine outlasts.
    """
    port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                moto.terminate()
                raise
            time.sleep(0.1)
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    return moto, endpoint
