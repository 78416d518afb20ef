"""Extensions some tests need that only Debian's packages provide, and what a test does without one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.postgres.binaries import embedded_bindir, find_program, major_version
from tasks.postgres.embedded import EmbeddedServer
from tests.integration.conftest import admin_connection
from tests.second_major import second_major, system_servers


def require_extension(server: EmbeddedServer, pg_bindir: Path, name: str) -> None:
    """Skip a test whose extension this server's installation lacks, saying which major runs it.

    .ci/run installs pg_partman, pg_cron and hypopg for each system server (Debian's packages
    ``postgresql-<major>-partman``, ``-cron`` and ``-hypopg``); the wheel's server has none of them.
    So under CI the wheel's pass skips these tests and the second pass, on the system server, must
    run them: there a missing extension fails.
    """
    with admin_connection(server) as connection:
        found = connection.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = %s", (name,)
        ).fetchone()
    if found is not None:
        return
    major = major_version(find_program("postgres", pg_bindir))
    package = {"pg_partman": "partman", "pg_cron": "cron", "hypopg": "hypopg"}[name]
    if pg_bindir.resolve() == embedded_bindir().resolve():
        chosen = second_major(system_servers(), major)
        where = (
            f"PostgreSQL {chosen[0]} ({chosen[1]})" if chosen else "a system server, of which there is none"
        )
        pytest.skip(
            f"{name} is not built for the wheel's PostgreSQL {major}; make test's second pass runs this "
            f"test on {where}, where .ci/run installs it"
        )
    message = f"{name} is not installed for PostgreSQL {major} ({pg_bindir})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; .ci/run must install postgresql-{major}-{package}")
    pytest.skip(f"{message}: apt-get install postgresql-{major}-{package} to run this test")
