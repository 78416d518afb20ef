"""The ``migrate-and-seed`` flow on a real Prefect API: Completed with artifacts, Failed on bad data."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import URL

from flows.migrate_and_seed import migrate_and_seed_flow
from models.results import MigrateAndSeedReport
from tests.integration.conftest import connect, flow_run_artifacts, flow_url

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_fresh_database_is_migrated_seeded_and_validated(
    database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBOPS_BCRYPT_ROUNDS", "4")
    state = migrate_and_seed_flow(
        database_url_override=flow_url(database_url, monkeypatch), return_state=True
    )

    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, MigrateAndSeedReport)
    assert report.validation.passed
    assert {table.table: table.inserted for table in report.seed.tables} == {
        "universities": 3,
        "courses": 12,
        "users": 2,
    }
    artifacts = flow_run_artifacts(state.state_details.flow_run_id)
    assert set(artifacts) == {"migration", "seed-changes", "seed-validation"}
    assert "passed" in str(artifacts["seed-validation"])


def test_validation_failure_fails_the_run(database_url: URL, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBOPS_BCRYPT_ROUNDS", "4")
    first = migrate_and_seed_flow(
        database_url_override=flow_url(database_url, monkeypatch), return_state=True
    )
    assert first.is_completed(), first.message
    with connect(database_url) as connection:
        # An application-side hook that keeps un-verifying universities: the seed cannot fix this.
        connection.execute(
            "CREATE FUNCTION unverify() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN NEW.is_verified := false; RETURN NEW; END$$"
        )
        connection.execute(
            "CREATE TRIGGER keep_unverified BEFORE INSERT OR UPDATE ON universities "
            "FOR EACH ROW EXECUTE FUNCTION unverify()"
        )
        connection.execute("UPDATE universities SET is_verified = false")

    state = migrate_and_seed_flow(
        database_url_override=flow_url(database_url, monkeypatch), return_state=True
    )

    assert state.is_failed()
    assert "seed validation failed" in str(state.message)
    assert "not verified: tu-berlin, uva, ku-leuven" in str(state.message)
