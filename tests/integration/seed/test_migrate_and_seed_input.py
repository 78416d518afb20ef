"""``dbops migrate-and-seed`` exits 2 only with the schema untouched: a deploy pipeline reads exit 2 as
"bad input, nothing done", so every check of its input (settings, the seed file, the password policy)
runs before the migration."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from models.settings import Settings
from tasks.schema.migrate import migrate
from tests.integration.conftest import connect, run_cli

BAD_INPUTS: dict[str, dict[str, str]] = {
    "seed file missing": {"DBOPS_SEED_FILE": "/nonexistent/seed.yaml"},
    "seed file malformed": {"DBOPS_SEED_FILE": "{malformed}"},
    "production without an admin password": {"DBOPS_ENVIRONMENT": "production"},
    "production with a short admin password": {
        "DBOPS_ENVIRONMENT": "production",
        "DBOPS_ADMIN_PASSWORD": "short",
    },
    "bad setting": {"DBOPS_BCRYPT_ROUNDS": "99"},
    "infinite timeout": {"DBOPS_MIGRATION_LOCK_TIMEOUT_SECONDS": "inf"},
    "timeout that would round to none": {"DBOPS_DDL_LOCK_TIMEOUT_SECONDS": "0.0001"},
}


def revision(url: URL) -> str:
    with connect(url) as connection:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("bad_input", list(BAD_INPUTS))
def test_every_exit_2_leaves_the_revision_unchanged(
    bad_input: str, database_url: URL, settings: Settings, cli_env: dict[str, str], tmp_path: Path
) -> None:
    migrate(database_url, settings, target="0001")
    malformed = tmp_path / "malformed.yaml"
    malformed.write_text("admin:\n  first_name: Ada\nunknown_key: 1\n")
    env = cli_env | {
        name: value.replace("{malformed}", str(malformed)) for name, value in BAD_INPUTS[bad_input].items()
    }

    result = run_cli("migrate-and-seed", env=env)

    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("dbops: error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert revision(database_url) == "0001"
