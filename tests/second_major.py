"""The integration suite's second pass, on a second PostgreSQL major: ``make test`` runs the whole
suite on the wheel's server, then this runs ``tests/integration`` again on the newest system server of
another major (Debian's 15 today, from ``/usr/lib/postgresql/*/bin``), so every command is proven on
two majors.

    python -m tests.second_major [pytest arguments...]

Under ``CI=true`` a machine without such a server fails: ``.ci/run`` installs one, and a matrix that
silently shrank to one major would prove nothing. A developer machine without one is told so and
passes. A pass that selects no test (pytest's exit code 5) fails either way, since it would otherwise
look like a pass that proved something.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from models.errors import DbopsError
from tasks.postgres.binaries import embedded_bindir, find_program, major_version

SYSTEM_ROOT = Path("/usr/lib/postgresql")
_NO_TESTS_COLLECTED = 5


def second_major(servers: list[tuple[int, Path]], wheel_major: int) -> tuple[int, Path] | None:
    """The newest of *servers* (major, bin directory) whose major is not the wheel's; None when every
    server is the wheel's major, or there is none."""
    others = [server for server in servers if server[0] != wheel_major]
    return max(others) if others else None


def system_servers(root: Path = SYSTEM_ROOT) -> list[tuple[int, Path]]:
    """Each ``<root>/*/bin`` holding a server, with the major its ``postgres`` reports."""
    servers = []
    for bindir in sorted(root.glob("*/bin")):
        if (bindir / "postgres").is_file():
            servers.append((major_version(bindir / "postgres"), bindir))
    return servers


def main(pytest_arguments: list[str]) -> int:
    try:
        wheel_major = major_version(find_program("postgres", embedded_bindir()))
        servers = system_servers()
    except DbopsError as error:
        print(f"second pass: {error}", file=sys.stderr)
        return 1
    chosen = second_major(servers, wheel_major)
    if chosen is None:
        found = ", ".join(f"{major} in {path}" for major, path in servers) or "none"
        message = (
            f"second pass: no PostgreSQL server of a major other than the wheel's {wheel_major} in "
            f"{SYSTEM_ROOT}/*/bin (found: {found}); install one, e.g. Debian's package postgresql"
        )
        if os.environ.get("CI") == "true":
            print(f"{message}. .ci/run must install it.", file=sys.stderr)
            return 1
        print(f"{message}, to run the suite on a second major. Skipped.", file=sys.stderr)
        return 0
    major, bindir = chosen
    print(f"second pass: the integration suite on PostgreSQL {major} ({bindir})", file=sys.stderr, flush=True)
    environment = os.environ | {"DBOPS_PG_BINDIR": str(bindir)}
    command = [sys.executable, "-m", "pytest", "tests/integration", *pytest_arguments]
    returncode = subprocess.call(command, env=environment)
    if returncode == _NO_TESTS_COLLECTED:
        print("second pass: no test was selected; check the marker expression", file=sys.stderr)
        return 1
    return returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
