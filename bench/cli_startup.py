"""Wall time of ``dbops --help`` and ``dbops db-url`` against ``python -c "import sqlalchemy"``.

Scripts and operators run these quick commands often, so their cost is almost all Python start-up
and imports. The target is under 0.3 s each. Importing SQLAlchemy, which every command that reads
the configuration needs, is the reference: a command cannot start faster than the libraries it
stands on, and the ratio stays meaningful on a machine whose absolute speed varies. Each case is a
fresh process, as a user's run is; the three run interleaved, in an order that rotates every round,
so that a busy moment on a shared machine falls on all of them alike. db-url gets a dummy
``DBOPS_DATABASE_URL`` (nothing listens on its port, and nothing connects), and the working directory
is an empty temporary one, so no ``.env`` or embedded server takes part.

    .venv/bin/python bench/cli_startup.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DUMMY_URL = "postgresql://u:p@127.0.0.1:5/db"


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds

    dbops = str(Path(sys.executable).parent / "dbops")  # the console script, as users run it
    cases = {
        'python -c "import sqlalchemy"': [sys.executable, "-c", "import sqlalchemy"],
        "dbops --help": [dbops, "--help"],
        "dbops db-url": [dbops, "db-url"],
    }
    reference = next(iter(cases))
    with tempfile.TemporaryDirectory() as directory:
        cwd = Path(directory)
        env = {key: value for key, value in os.environ.items() if not key.startswith("DBOPS_")}
        env |= {"DBOPS_DATABASE_URL": DUMMY_URL, "DBOPS_HOME": str(cwd / "home")}
        # One untimed round: the first run of each pays for reading files into the page cache.
        for command in cases.values():
            timed(command, env, cwd)
        seconds: dict[str, list[float]] = {name: [] for name in cases}
        names = list(cases)
        for round_number in range(rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                seconds[name].append(timed(cases[name], env, cwd))

    base = statistics.median(seconds[reference])
    print(f"{rounds} rounds, {os.cpu_count()} cores; medians, with the fastest and slowest run")
    print(f"{'case':<30} {'median':>8} {'min':>7} {'max':>7} {'vs reference':>13}")
    for name, runs in seconds.items():
        median = statistics.median(runs)
        print(f"{name:<30} {median:>7.3f}s {min(runs):>6.3f}s {max(runs):>6.3f}s {median / base:>12.2f}x")


if __name__ == "__main__":
    main()
