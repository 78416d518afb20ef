"""What the migration lock costs: locked ``tasks.schema.migrate.migrate`` against plain ``alembic upgrade``.

Deploy pipelines run migrate on every deploy, mostly as a no-op at head, so both cases are measured:
a fresh database migrated to head, and a database already at head. The baseline is Alembic's own
``command.upgrade`` on a connection, with no lock, no revision checks and no timeouts. Runs on the
embedded server in a temporary directory; prints medians and the locked/plain ratio.

    .venv/bin/python bench/migrate_overhead.py [--repeat 9]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine
from sqlalchemy.engine import URL

from models.settings import load_settings
from tasks.postgres.binaries import embedded_bindir
from tasks.postgres.embedded import EmbeddedServer, create_database, ensure_running, stop
from tasks.schema.migrate import alembic_config, migrate


def plain_alembic(url: URL) -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        command.upgrade(alembic_config(connection), "head")
    engine.dispose()


def fresh_database(server: EmbeddedServer) -> URL:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    create_database(server, name)
    return server.url(name)


def median_seconds(runs: int, prepare: Callable[[], URL], job: Callable[[URL], None]) -> float:
    timings = []
    for _ in range(runs):
        url = prepare()
        started = time.perf_counter()
        job(url)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    repeat = parser.parse_args().repeat

    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory) / "pg"
        server = ensure_running(base, embedded_bindir(), durable=False)
        settings = load_settings(_env_file=None, home=Path(directory))

        def locked(url: URL) -> None:
            migrate(url, settings)

        def at_head(job: Callable[[URL], None]) -> Callable[[], URL]:
            def prepare() -> URL:
                url = fresh_database(server)
                job(url)
                return url

            return prepare

        try:
            plain_alembic(fresh_database(server))  # warm imports and caches before measuring
            rows = []
            for case, prepare_plain, prepare_locked in (
                ("empty -> head", lambda: fresh_database(server), lambda: fresh_database(server)),
                ("no-op at head", at_head(plain_alembic), at_head(locked)),
            ):
                plain = median_seconds(repeat, prepare_plain, plain_alembic)
                ours = median_seconds(repeat, prepare_locked, locked)
                rows.append((case, plain, ours))
        finally:
            stop(base, embedded_bindir())

    print(f"median of {repeat} runs each, same server, same process")
    print(f"{'case':<16} {'alembic upgrade':>16} {'dbops migrate':>14} {'ratio':>7}")
    for case, plain, ours in rows:
        print(f"{case:<16} {plain * 1000:>13.1f} ms {ours * 1000:>11.1f} ms {ours / plain:>6.2f}x")


if __name__ == "__main__":
    main()
