"""Seeding on every deploy never resets a changed password or reactivates a suspended account.

migrate-and-seed runs on every deploy; in staging and production the configured passwords are
initial ones. ``--reset-accounts`` brings the seed's view back on purpose.
"""

from __future__ import annotations

import bcrypt
import pytest
from sqlalchemy.engine import URL

from models.seed import BUNDLED_SEED_FILE, parse_seed_document
from tests.integration.conftest import connect, run_cli

ADMIN_PASSWORD = "initial-admin-password"
STAFF_PASSWORD = "initial-staff-password"
CHANGED = "chosen-by-the-user-123"


@pytest.fixture
def production_env(cli_env: dict[str, str]) -> dict[str, str]:
    return cli_env | {
        "DBOPS_ENVIRONMENT": "production",
        "DBOPS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "DBOPS_STAFF_PASSWORD": STAFF_PASSWORD,
        "DBOPS_BCRYPT_ROUNDS": "4",
    }


def staff_email() -> str:
    return parse_seed_document(BUNDLED_SEED_FILE.read_text(), "seed").staff[0].email


def account(url: URL, email: str) -> tuple[str, str]:
    with connect(url) as connection:
        row = connection.execute(
            "SELECT password_hash, status::text FROM users WHERE email = %s", (email,)
        ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def test_a_changed_password_and_a_suspension_survive_every_deploy(
    database_url: URL, production_env: dict[str, str]
) -> None:
    assert run_cli("migrate-and-seed", env=production_env).returncode == 0
    email = staff_email()
    with connect(database_url) as connection:
        connection.execute(
            "UPDATE users SET password_hash = %s, status = 'SUSPENDED' WHERE email = %s",
            (bcrypt.hashpw(CHANGED.encode(), bcrypt.gensalt(4)).decode(), email),
        )

    for _ in range(2):
        deployed = run_cli("migrate-and-seed", env=production_env)
        assert deployed.returncode == 0, deployed.stderr

    password_hash, status = account(database_url, email)
    assert bcrypt.checkpw(CHANGED.encode(), password_hash.encode())
    assert status == "SUSPENDED"
    assert "[WARNING] staff linked" not in deployed.stdout  # a suspension is the administrator's business

    reset = run_cli("seed", "--reset-accounts", env=production_env)

    assert reset.returncode == 0, reset.stderr
    password_hash, status = account(database_url, email)
    assert bcrypt.checkpw(STAFF_PASSWORD.encode(), password_hash.encode())
    assert status == "ACTIVE"


def test_a_suspended_admin_is_a_warning_and_a_demoted_admin_fails_the_deploy(
    database_url: URL, production_env: dict[str, str]
) -> None:
    assert run_cli("migrate-and-seed", env=production_env).returncode == 0
    with connect(database_url) as connection:
        connection.execute(
            "UPDATE users SET status = 'SUSPENDED', password_hash = %s WHERE role = 'ADMIN'",
            (bcrypt.hashpw(CHANGED.encode(), bcrypt.gensalt(4)).decode(),),
        )

    suspended = run_cli("migrate-and-seed", env=production_env)

    assert suspended.returncode == 0, suspended.stderr
    assert "[WARNING] admin account: status is SUSPENDED, expected ACTIVE" in suspended.stdout

    with connect(database_url) as connection:
        connection.execute(
            "UPDATE users SET role = 'STUDENT' WHERE status = 'SUSPENDED' AND university_id IS NULL"
        )
    demoted = run_cli("migrate-and-seed", env=production_env)

    assert demoted.returncode == 1
    assert "admin account: role is STUDENT, expected ADMIN" in demoted.stderr


def test_development_still_converges_accounts(database_url: URL, cli_env: dict[str, str]) -> None:
    env = cli_env | {"DBOPS_STAFF_PASSWORD": STAFF_PASSWORD, "DBOPS_BCRYPT_ROUNDS": "4"}
    assert run_cli("migrate-and-seed", env=env).returncode == 0
    email = staff_email()
    with connect(database_url) as connection:
        connection.execute("UPDATE users SET status = 'SUSPENDED' WHERE email = %s", (email,))

    assert run_cli("seed", env=env).returncode == 0

    assert account(database_url, email)[1] == "ACTIVE"
