"""Seeding against a real server: idempotence, targeted updates, concurrency, passwords, bad files."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest
import yaml
from pydantic import SecretStr
from sqlalchemy.engine import URL

from models.errors import SeedFileError, SeedRefusedError
from models.results import TableChanges
from models.seed import BUNDLED_SEED_FILE
from models.settings import Environment, Settings
from tasks.seed.upsert import load_seed_document, seed
from tasks.seed.validation import validate_seed
from tests.integration.conftest import connect, run_cli, spawn_cli

ADMIN_PASSWORD = "correct horse battery staple"


def snapshot(url: URL) -> dict[str, list[tuple[object, ...]]]:
    """Every seeded row with its updated_at and password hash, to compare runs."""
    with connect(url) as connection:
        return {
            "universities": connection.execute(
                "SELECT slug, updated_at FROM universities ORDER BY slug"
            ).fetchall(),
            "courses": connection.execute(
                "SELECT code, updated_at, tuition_fee FROM courses ORDER BY code"
            ).fetchall(),
            "users": connection.execute(
                "SELECT email, updated_at, password_hash FROM users ORDER BY email"
            ).fetchall(),
        }


def counts(result_tables: list[TableChanges]) -> dict[str, tuple[int, int, int]]:
    return {t.table: (t.inserted, t.updated, t.unchanged) for t in result_tables}


@pytest.fixture
def seed_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"admin_password": SecretStr(ADMIN_PASSWORD), "bcrypt_rounds": 4})


def test_second_run_changes_nothing(migrated_url: URL, seed_settings: Settings) -> None:
    first = seed(migrated_url, seed_settings)
    before = snapshot(migrated_url)
    second = seed(migrated_url, seed_settings)

    assert counts(first.tables) == {"universities": (3, 0, 0), "courses": (12, 0, 0), "users": (2, 0, 0)}
    assert counts(second.tables) == {"universities": (0, 0, 3), "courses": (0, 0, 12), "users": (0, 0, 2)}
    assert snapshot(migrated_url) == before  # same rows, same updated_at, same password hash


def test_seeded_admin_password_verifies_with_bcrypt(migrated_url: URL, seed_settings: Settings) -> None:
    seed(migrated_url, seed_settings)
    with connect(migrated_url) as connection:
        row = connection.execute(
            "SELECT password_hash, role::text, status::text FROM users WHERE email = %s",
            (seed_settings.admin_email,),
        ).fetchone()
    assert row is not None
    stored_hash, role, status = row
    assert bcrypt.checkpw(ADMIN_PASSWORD.encode(), str(stored_hash).encode())
    assert not bcrypt.checkpw(b"wrong password", str(stored_hash).encode())
    assert str(stored_hash).startswith("$2b$04$")  # the configured cost
    assert (role, status) == ("ADMIN", "ACTIVE")


def test_a_changed_password_is_rehashed_an_unchanged_one_is_not(
    migrated_url: URL, seed_settings: Settings
) -> None:
    seed(migrated_url, seed_settings)
    changed = seed(
        migrated_url, seed_settings.model_copy(update={"admin_password": SecretStr("a new passphrase!")})
    )
    assert counts(changed.tables)["users"] == (0, 1, 1)


def test_changed_seed_file_updates_exactly_the_changed_rows(
    migrated_url: URL, seed_settings: Settings, tmp_path: Path
) -> None:
    seed(migrated_url, seed_settings)
    before = snapshot(migrated_url)
    document = yaml.safe_load(BUNDLED_SEED_FILE.read_text())
    document["universities"][1]["courses"][0]["tuition_fee"] = "2600.00"
    changed_file = tmp_path / "seed.yaml"
    changed_file.write_text(yaml.safe_dump(document, allow_unicode=True))

    result = seed(migrated_url, seed_settings.model_copy(update={"seed_file": changed_file}))
    after = snapshot(migrated_url)

    assert counts(result.tables) == {"universities": (0, 0, 3), "courses": (0, 1, 11), "users": (0, 0, 2)}
    differing = [new for old, new in zip(before["courses"], after["courses"], strict=True) if old != new]
    assert [row[0] for row in differing] == ["ECON-BSC"]
    assert str(differing[0][2]) == "2600.00"
    assert after["universities"] == before["universities"]
    assert after["users"] == before["users"]


def test_two_seeds_at_once_end_as_one(migrated_url: URL, cli_env: dict[str, str]) -> None:
    env = cli_env | {"DBOPS_ADMIN_PASSWORD": ADMIN_PASSWORD, "DBOPS_BCRYPT_ROUNDS": "4"}
    runs = [spawn_cli("seed", env=env) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]

    assert [run.returncode for run in runs] == [0, 0], outputs
    with connect(migrated_url) as connection:
        totals = connection.execute(
            "SELECT (SELECT count(*) FROM universities), (SELECT count(*) FROM courses), "
            "(SELECT count(*) FROM users)"
        ).fetchone()
        stored_hash = connection.execute("SELECT password_hash FROM users WHERE role = 'ADMIN'").fetchone()
    assert totals == (3, 12, 2)
    assert stored_hash is not None
    assert bcrypt.checkpw(ADMIN_PASSWORD.encode(), str(stored_hash[0]).encode())
    assert sum("unchanged" in stdout for stdout, _ in outputs) == 2
    inserted_lines = [
        line for stdout, _ in outputs for line in stdout.splitlines() if line.split()[:1] == ["universities"]
    ]
    assert sorted(line.split()[1] for line in inserted_lines) == [
        "0",
        "3",
    ]  # one inserted, the other found them


def test_password_over_72_bytes_is_refused_before_writing(migrated_url: URL, seed_settings: Settings) -> None:
    too_long = "ü" * 37  # 74 bytes in UTF-8, only 37 characters
    with pytest.raises(SeedRefusedError, match="DBOPS_ADMIN_PASSWORD is longer than 72 bytes"):
        seed(migrated_url, seed_settings.model_copy(update={"admin_password": SecretStr(too_long)}))
    assert snapshot(migrated_url)["users"] == []


@pytest.mark.parametrize(
    ("password", "expected"),
    [(None, "without an admin password"), ("short-pass1", "shorter than 12 characters")],
)
def test_production_refuses_missing_or_weak_admin_password(
    migrated_url: URL, settings: Settings, password: str | None, expected: str
) -> None:
    production = settings.model_copy(
        update={
            "environment": Environment.PRODUCTION,
            "admin_password": SecretStr(password) if password else None,
        }
    )
    with pytest.raises(SeedRefusedError, match=expected):
        seed(migrated_url, production)
    assert snapshot(migrated_url)["universities"] == []


def test_bad_seed_file_names_the_field_and_writes_nothing(
    migrated_url: URL, seed_settings: Settings, tmp_path: Path
) -> None:
    document = yaml.safe_load(BUNDLED_SEED_FILE.read_text())
    document["universities"][2]["courses"][1]["duration_months"] = "two years"
    bad_file = tmp_path / "seed.yaml"
    bad_file.write_text(yaml.safe_dump(document, allow_unicode=True))

    with pytest.raises(SeedFileError) as failure:
        seed(migrated_url, seed_settings.model_copy(update={"seed_file": bad_file}))
    assert "universities[2].courses[1].duration_months" in str(failure.value)
    assert snapshot(migrated_url) == {"universities": [], "courses": [], "users": []}


def test_cli_exit_codes(migrated_url: URL, cli_env: dict[str, str], tmp_path: Path) -> None:
    env = cli_env | {"DBOPS_BCRYPT_ROUNDS": "4"}
    bad_file = tmp_path / "seed.yaml"
    bad_file.write_text("admin: {first_name: A, last_name: B}\nuniversities: []\nsurprise: 1\n")

    bad = run_cli("seed", env=env | {"DBOPS_SEED_FILE": str(bad_file)})
    good = run_cli("seed", env=env)
    with connect(migrated_url) as connection:
        connection.execute("UPDATE universities SET is_verified = false WHERE slug = 'uva'")
    broken = run_cli("validate-seed", env=env)
    unreachable = run_cli("seed", env=env | {"DBOPS_DATABASE_URL": "postgresql://x:y@127.0.0.1:9/z"})

    assert bad.returncode == 2
    assert "dbops: error: seed file" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert good.returncode == 0, good.stderr
    assert broken.returncode == 1
    assert "not verified: uva" in broken.stdout + broken.stderr
    assert unreachable.returncode == 2


def test_validation_catches_an_unlinked_staff_user_and_an_unverified_university(
    migrated_url: URL, seed_settings: Settings
) -> None:
    seed(migrated_url, seed_settings)
    document = load_seed_document(BUNDLED_SEED_FILE)
    assert validate_seed(migrated_url, seed_settings, document).passed

    with connect(migrated_url) as connection:
        connection.execute("UPDATE users SET university_id = NULL WHERE role = 'UNIVERSITY'")
        connection.execute("UPDATE universities SET is_verified = false WHERE slug = 'ku-leuven'")
        connection.execute("UPDATE courses SET duration_months = 30 WHERE code = 'PHIL-BA'")
    report = validate_seed(migrated_url, seed_settings, document)

    failed = {check.name: check.detail for check in report.failures}
    assert set(failed) == {"staff linked", "universities verified", "courses match seed"}
    assert "is linked to no university, expected tu-berlin" in failed["staff linked"]
    assert failed["universities verified"] == "not verified: ku-leuven"
    assert failed["courses match seed"] == "ku-leuven/PHIL-BA differs in duration_months"


def test_validation_catches_a_wrong_admin(migrated_url: URL, seed_settings: Settings) -> None:
    seed(migrated_url, seed_settings)
    with connect(migrated_url) as connection:
        connection.execute("UPDATE users SET status = 'SUSPENDED' WHERE role = 'ADMIN'")
    other_password = seed_settings.model_copy(update={"admin_password": SecretStr("not the seeded one")})
    report = validate_seed(migrated_url, other_password, load_seed_document(BUNDLED_SEED_FILE))
    admin = next(check for check in report.checks if check.name == "admin account")
    assert not admin.passed
    assert (
        admin.detail == "status is SUSPENDED, expected ACTIVE; password does not match DBOPS_ADMIN_PASSWORD"
    )
