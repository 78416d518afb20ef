"""Synthetic volume through COPY on a real server: determinism, safety, and the bulk-load rebuild."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import URL

from models.errors import SeedError, SeedRefusedError
from models.settings import Environment, Settings
from tasks.postgres.embedded import EmbeddedServer, create_database
from tasks.schema.drift import detect_drift
from tasks.schema.migrate import migrate
from tasks.seed.synth import synth
from tasks.seed.synth_rows import SynthPlan
from tasks.seed.upsert import seed
from tests.helpers import synth_plan
from tests.integration.conftest import connect, run_cli

UNTIL = datetime(2026, 11, 1, tzinfo=UTC)

# Each table rendered with natural keys instead of server-generated ids of the seeded rows.
FINGERPRINTS = {
    "users": "SELECT u.id, u.email, u.first_name, u.last_name, u.status, v.slug, u.created_at, u.updated_at "
    "FROM users u LEFT JOIN universities v ON v.id = u.university_id WHERE u.email LIKE '%@synth.invalid'",
    "applications": "SELECT a.id, u.email, c.code, a.status, a.submitted_at, a.decided_at, a.created_at "
    "FROM applications a JOIN users u ON u.id = a.user_id JOIN courses c ON c.id = a.course_id",
    "audit_logs": "SELECT l.id, u.email, l.action, l.entity_type, l.entity_id, l.payload, l.created_at "
    "FROM audit_logs l LEFT JOIN users u ON u.id = l.actor_id",
    "analytics_events": "SELECT e.id, u.email, v.slug, e.event_type, e.properties, e.occurred_at "
    "FROM analytics_events e LEFT JOIN users u ON u.id = e.user_id "
    "LEFT JOIN universities v ON v.id = e.university_id",
}


def fingerprint(url: URL) -> dict[str, str]:
    with connect(url) as connection:
        return {
            table: str(
                connection.execute(
                    f"SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM ({query}) t"
                ).fetchone()
            )
            for table, query in FINGERPRINTS.items()
        }


def plan(seed_value: int, audit_logs: int = 3_000) -> SynthPlan:
    return synth_plan(
        users=300, applications=600, audit_logs=audit_logs, events=2_000, days=90, seed=seed_value
    )


def seeded_database(server: EmbeddedServer, settings: Settings) -> URL:
    name = f"synth_{uuid.uuid4().hex[:10]}"
    create_database(server, name)
    url = server.url(name)
    migrate(url, settings)
    seed(url, settings.model_copy(update={"bcrypt_rounds": 4}))
    return url


def test_same_seed_same_data_other_seed_other_data(pg_server: EmbeddedServer, settings: Settings) -> None:
    first, second, third = (seeded_database(pg_server, settings) for _ in range(3))
    synth(first, settings, plan(7))
    synth(second, settings, plan(7))
    synth(third, settings, plan(8))

    assert fingerprint(first) == fingerprint(second)
    differing = {table for table, value in fingerprint(third).items() if value != fingerprint(first)[table]}
    assert differing == set(FINGERPRINTS)


def test_timestamps_spread_over_the_window(migrated_url: URL, settings: Settings) -> None:
    seed(migrated_url, settings.model_copy(update={"bcrypt_rounds": 4}))
    result = synth(migrated_url, settings, plan(1))
    with connect(migrated_url) as connection:
        window = connection.execute("SELECT min(created_at), max(created_at) FROM audit_logs").fetchone()
        pairs = connection.execute(
            "SELECT count(*), count(DISTINCT (user_id, course_id)) FROM applications"
        ).fetchone()
    assert result.rows == {"users": 300, "applications": 600, "audit_logs": 3_000, "analytics_events": 2_000}
    assert window is not None
    oldest, newest = window
    assert isinstance(oldest, datetime)
    assert isinstance(newest, datetime)
    assert datetime(2026, 8, 3, tzinfo=UTC) <= oldest < datetime(2026, 8, 5, tzinfo=UTC)
    assert datetime(2026, 10, 30, tzinfo=UTC) < newest < UNTIL
    assert pairs == (600, 600)


def test_refused_in_production_and_for_a_reloaded_seed(
    migrated_url: URL, settings: Settings, cli_env: dict[str, str]
) -> None:
    production = run_cli("synth", env=cli_env | {"DBOPS_ENVIRONMENT": "production"})
    assert production.returncode == 2
    assert "refusing to load synthetic data into a production database" in production.stderr

    seed(migrated_url, settings.model_copy(update={"bcrypt_rounds": 4}))
    synth(migrated_url, settings, plan(3))
    with pytest.raises(SeedRefusedError, match="synthetic data for seed 3 is already loaded"):
        synth(migrated_url, settings, plan(3))
    with pytest.raises(SeedRefusedError, match="production"):
        synth(migrated_url, settings.model_copy(update={"environment": Environment.PRODUCTION}), plan(4))


def test_bulk_load_rebuilds_indexes_and_keys_exactly(migrated_url: URL, settings: Settings) -> None:
    seed(migrated_url, settings.model_copy(update={"bcrypt_rounds": 4}))
    synth(migrated_url, settings, plan(5, audit_logs=120_000))  # above the rebuild threshold

    assert detect_drift(migrated_url, settings).differences == []
    with connect(migrated_url) as connection:
        key = connection.execute(
            "SELECT convalidated FROM pg_constraint WHERE conname = 'fk_audit_logs_actor_id_users'"
        ).fetchone()
        index = connection.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_audit_logs_created_at'::regclass"
        ).fetchone()
    assert key == (True,)
    assert index == (True,)


def test_a_failed_load_rolls_back_everything(migrated_url: URL, settings: Settings) -> None:
    seed(migrated_url, settings.model_copy(update={"bcrypt_rounds": 4}))
    with connect(migrated_url) as connection:
        connection.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN RAISE EXCEPTION 'events are frozen'; END$$"
        )
        connection.execute(
            "CREATE TRIGGER events_frozen BEFORE INSERT ON analytics_events "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"
        )

    with pytest.raises(SeedError, match="failed and was rolled back") as failure:
        synth(migrated_url, settings, plan(6, audit_logs=120_000))

    assert "events are frozen" in str(failure.value)
    with connect(migrated_url) as connection:
        assert connection.execute("SELECT count(*) FROM audit_logs").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM users").fetchone() == (2,)  # only the seeded ones
    assert detect_drift(migrated_url, settings).differences == []  # dropped keys and indexes came back


def test_skip_if_loaded_makes_a_rerun_a_no_op(
    migrated_url: URL, settings: Settings, cli_env: dict[str, str]
) -> None:
    seed(migrated_url, settings.model_copy(update={"bcrypt_rounds": 4}))
    arguments = (
        "synth",
        "--seed",
        "9",
        "--users",
        "20",
        "--applications",
        "10",
        "--audit-logs",
        "50",
        "--events",
        "50",
        "--skip-if-loaded",
    )
    first = run_cli(*arguments, env=cli_env)
    again = run_cli(*arguments, env=cli_env)
    strict = run_cli(*arguments[:-1], env=cli_env)

    assert first.returncode == 0, first.stderr
    assert "loaded 20 users, 10 applications, 50 audit_logs, 50 analytics_events" in first.stdout
    assert again.returncode == 0
    assert "already loaded, nothing to do" in again.stdout
    assert strict.returncode == 2
    assert "synthetic data for seed 9 is already loaded" in strict.stderr
    with connect(migrated_url) as connection:
        assert connection.execute("SELECT count(*) FROM audit_logs").fetchone() == (50,)
