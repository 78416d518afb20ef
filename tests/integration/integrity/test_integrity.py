"""Every integrity check can fail: each test breaks exactly one thing and sees exactly that check fail."""

from __future__ import annotations

import json
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy.engine import URL

from models.integrity import CheckStatus, IntegrityReport
from models.seed import BUNDLED_SEED_FILE
from models.settings import Settings
from tasks.integrity.runner import validate_integrity
from tasks.schema.migrate import migrate
from tasks.seed.upsert import load_seed_document
from tests.integration.conftest import connect, run_cli, url_string

SEED = load_seed_document(BUNDLED_SEED_FILE)


def validate(url: URL, settings: Settings) -> IntegrityReport:
    return validate_integrity(url, settings, seed_document=SEED)


def failing(report: IntegrityReport) -> dict[str, str]:
    return {check.name: check.detail for check in report.checks if check.status is not CheckStatus.PASSED}


def test_a_clean_seeded_database_passes_every_check(seeded_url: URL, settings: Settings) -> None:
    report = validate(seeded_url, settings)

    assert failing(report) == {}
    assert report.passed
    assert [check.name for check in report.checks] == [
        "migrations",
        "schema drift",
        "uniqueness",
        "relations",
        "enums",
        "indexes",
        "seed invariants",
        "amcheck",
        "row counts",
    ]
    assert report.row_counts == {
        "analytics_events": 500,
        "universities": 3,
        "courses": 12,
        "users": 202,
        "applications": 300,
        "audit_logs": 1_000,
    }
    assert "btree indexes pass bt_index_check" in next(c.detail for c in report.checks if c.name == "amcheck")


def _run(url: URL, *statements: str) -> None:
    with connect(url) as connection:
        for statement in statements:
            connection.execute(statement)


def _invalid_index(url: URL) -> None:
    with connect(url) as connection, pytest.raises(psycopg.errors.UniqueViolation):
        # Fails on the duplicate statuses and leaves an INVALID index behind, as in production.
        connection.execute("CREATE UNIQUE INDEX CONCURRENTLY ix_users_status_unique ON users (status)")


BREAKAGES: dict[str, tuple[Callable[[URL], None], str, str]] = {
    "declared index dropped": (
        lambda url: _run(url, "DROP INDEX ix_users_role"),
        "indexes",
        "declared index ix_users_role on users (role) is missing",
    ),
    "invalid index": (_invalid_index, "indexes", "index ix_users_status_unique on users is invalid"),
    "NOT VALID foreign key with an orphan": (
        lambda url: _run(
            url,
            "ALTER TABLE users DROP CONSTRAINT fk_users_university_id_universities",
            "INSERT INTO users (email, password_hash, first_name, last_name, university_id) "
            "VALUES ('orphan@example.org', '!', 'O', 'R', '00000000-0000-4000-8000-000000000001')",
            "ALTER TABLE users ADD CONSTRAINT fk_users_university_id_universities "
            "FOREIGN KEY (university_id) REFERENCES universities (id) ON DELETE SET NULL NOT VALID",
        ),
        "relations",
        "foreign key fk_users_university_id_universities (users (university_id) -> universities) "
        "is NOT VALID: existing rows were never checked; 1 row(s) of users (university_id) -> universities "
        "point at no universities row",
    ),
    "emails differing only in case": (
        lambda url: _run(
            url,
            "ALTER TABLE users DROP CONSTRAINT uq_users_email",
            "INSERT INTO users (email, password_hash, first_name, last_name) "
            "VALUES (' Admin@Platform.example', '!', 'A', 'D')",
        ),
        "uniqueness",
        "unique key users (email) is not enforced: no valid unique index; users (email) has 1 value(s) "
        "shared by several rows once trimmed and lower-cased, e.g. 'admin@platform.example'",
    ),
    "enum default changed by hand": (
        lambda url: _run(url, "ALTER TABLE users ALTER COLUMN role SET DEFAULT 'ADMIN'"),
        "enums",
        "users.role defaults to 'ADMIN'::role, the models say 'STUDENT'",
    ),
    "seeded university unverified": (
        lambda url: _run(url, "UPDATE universities SET is_verified = false WHERE slug = 'uva'"),
        "seed invariants",
        "universities verified: not verified: uva",
    ),
    "staff user unlinked": (
        lambda url: _run(url, "UPDATE users SET university_id = NULL WHERE role = 'UNIVERSITY'"),
        "seed invariants",
        "staff linked: admissions@tu-berlin.platform.example is linked to no university",
    ),
    "one revision behind": (
        lambda url: None,  # done by the test with the real migration, below
        "migrations",
        "database is at revision 0001, the code's head is 0002: run dbops migrate",
    ),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_each_breakage_fails_exactly_its_check(breakage: str, seeded_url: URL, settings: Settings) -> None:
    break_it, check, detail = BREAKAGES[breakage]
    if breakage == "one revision behind":
        migrate(seeded_url, settings, target="0001")
    break_it(seeded_url)

    report = validate(seeded_url, settings)

    assert set(failing(report)) == {check}, failing(report)
    assert detail in failing(report)[check]
    assert not report.passed
    assert next(c for c in report.checks if c.name == check).samples, "a failure comes with sample rows"


def test_orphan_samples_name_the_offending_rows(seeded_url: URL, settings: Settings) -> None:
    BREAKAGES["NOT VALID foreign key with an orphan"][0](seeded_url)
    relations = next(c for c in validate(seeded_url, settings).checks if c.name == "relations")
    assert relations.samples[0]["university_id"] == "00000000-0000-4000-8000-000000000001"
    assert relations.samples[0]["constraint"] == "fk_users_university_id_universities"


def test_amcheck_finds_an_index_out_of_order(seeded_url: URL, settings: Settings) -> None:
    # A btree built with one comparison function and read with its reverse: what a collation
    # change under an index (the classic glibc upgrade) does to real indexes.
    _run(
        seeded_url,
        "CREATE FUNCTION demo_cmp(bigint, bigint) RETURNS int LANGUAGE sql IMMUTABLE AS "
        "$$ SELECT CASE WHEN $1 < $2 THEN -1 WHEN $1 > $2 THEN 1 ELSE 0 END $$",
        "CREATE OPERATOR CLASS demo_ops FOR TYPE bigint USING btree AS OPERATOR 1 <, OPERATOR 2 <=, "
        "OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 demo_cmp(bigint, bigint)",
        "CREATE INDEX ix_audit_logs_demo ON audit_logs (id demo_ops)",
        "CREATE OR REPLACE FUNCTION demo_cmp(bigint, bigint) RETURNS int LANGUAGE sql IMMUTABLE AS "
        "$$ SELECT CASE WHEN $1 < $2 THEN 1 WHEN $1 > $2 THEN -1 ELSE 0 END $$",
    )
    report = validate(seeded_url, settings)
    assert set(failing(report)) == {"amcheck"}
    assert "index ix_audit_logs_demo: item order invariant violated" in failing(report)["amcheck"]
    assert not report.passed


def test_without_amcheck_privileges_it_is_a_warning_not_a_failure(
    seeded_url: URL, settings: Settings
) -> None:
    _run(
        seeded_url,
        "CREATE ROLE integrity_reader LOGIN PASSWORD 'reader-password'",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO integrity_reader",
    )
    reader = seeded_url.set(username="integrity_reader", password="reader-password")
    try:
        report = validate(reader, settings)
    finally:
        _run(
            seeded_url,
            "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM integrity_reader",
            "DROP OWNED BY integrity_reader",
            "DROP ROLE integrity_reader",
        )

    amcheck = next(check for check in report.checks if check.name == "amcheck")
    assert amcheck.status is CheckStatus.SKIPPED
    assert "permission denied to create extension" in amcheck.detail
    assert report.passed
    assert [check.name for check in report.warnings] == ["amcheck"]


def test_cli_json_round_trips_and_exit_codes(seeded_url: URL, cli_env: dict[str, str]) -> None:
    clean = run_cli("validate", "--json", env=cli_env)
    assert clean.returncode == 0, clean.stderr
    report = IntegrityReport.model_validate_json(clean.stdout)
    assert report.passed
    assert report.model_dump(mode="json") == json.loads(clean.stdout)

    _run(seeded_url, "UPDATE universities SET is_verified = false WHERE slug = 'uva'")
    broken = run_cli("validate", env=cli_env)
    assert broken.returncode == 1
    assert "seed invariants  error    failed" in broken.stdout
    assert "dbops: error: 1 integrity check(s) failed" in broken.stderr

    with_password = run_cli("validate", "--database-url", url_string(seeded_url), env=cli_env)
    assert with_password.returncode == 2
    assert "must not contain a password" in with_password.stderr
    assert str(seeded_url.password) not in with_password.stderr

    other = seeded_url.render_as_string(hide_password=True).replace(":***@", "@")
    via_env = run_cli(
        "validate",
        "--database-url",
        other,
        env=cli_env | {"PGPASSWORD": str(seeded_url.password), "DBOPS_DATABASE_URL": "  "},
    )
    assert via_env.returncode == 1  # the same broken database, reached through --database-url

    unreachable = run_cli("validate", "--database-url", "postgresql://nobody@127.0.0.1:9/none", env=cli_env)
    assert unreachable.returncode == 2
    assert "cannot connect to PostgreSQL database none on 127.0.0.1:9" in unreachable.stderr


def test_case_variants_are_caught_even_under_a_valid_unique_index(
    seeded_url: URL, settings: Settings
) -> None:
    _run(
        seeded_url,
        "INSERT INTO users (email, password_hash, first_name, last_name) "
        "VALUES ('Admin@Platform.Example', '!', 'A', 'B')",
    )
    report = validate(seeded_url, settings)
    assert set(failing(report)) == {"uniqueness"}
    assert failing(report)["uniqueness"] == (
        "users (email) has 1 value(s) shared by several rows once trimmed and lower-cased, "
        "e.g. 'admin@platform.example'"
    )
