from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models.errors import ConfigurationError
from models.retention import ObjectLock, ObjectLockMode
from models.settings import (
    MAX_TIMEOUT_SECONDS,
    TIMEOUT_FIELDS,
    ZERO_DISABLES,
    Environment,
    Settings,
    load_settings,
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no developer .env leaks in
    for name in (
        "DBOPS_DATABASE_URL",
        "DBOPS_ENVIRONMENT",
        "DBOPS_TIMEZONE",
        "DBOPS_HOME",
        "DBOPS_BACKUP_URL",
        "DBOPS_BACKUP_OBJECT_LOCK",
        "DBOPS_BACKUP_OBJECT_LOCK_MIN_DAYS",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_use_the_embedded_server_and_a_local_backup_directory() -> None:
    settings = load_settings()
    assert settings.configured_database_url() is None
    assert settings.embedded_server_dir == Path(".dbops/postgres")
    assert settings.effective_backup_url == ".dbops/backups"
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.migration_lock_timeout_seconds == 60


def test_environment_variables_and_dotenv_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DBOPS_TIMEZONE=Europe/Berlin\nDBOPS_LOG_SQL=true\n")
    monkeypatch.setenv("DBOPS_ENVIRONMENT", "production")
    settings = load_settings()
    assert settings.environment is Environment.PRODUCTION
    assert settings.timezone == "Europe/Berlin"
    assert settings.log_sql is True


def test_a_non_postgresql_url_is_a_configuration_error_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DBOPS_DATABASE_URL", "mysql://app:s3cr3t-pw@db/app")
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    message = str(refused.value)
    assert message.startswith("invalid configuration. DBOPS_DATABASE_URL uses 'mysql'")
    assert "s3cr3t-pw" not in message
    assert refused.value.exit_code == 2


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DBOPS_TIMEZONE", "Mars/Olympus", "DBOPS_TIMEZONE: unknown time zone 'Mars/Olympus'"),
        (
            "DBOPS_ENVIRONMENT",
            "prod",
            "DBOPS_ENVIRONMENT: Input should be 'development', 'staging' or 'production'",
        ),
        (
            "DBOPS_MIGRATION_LOCK_TIMEOUT_SECONDS",
            "-1",
            "DBOPS_MIGRATION_LOCK_TIMEOUT_SECONDS is -1 s; it must be between 0.001 s and 2147483.647 s",
        ),
        (
            "DBOPS_BACKUP_OBJECT_LOCK",
            "legal-hold",
            "DBOPS_BACKUP_OBJECT_LOCK: Input should be 'governance' or 'compliance'",
        ),
        (
            "DBOPS_BACKUP_OBJECT_LOCK_MIN_DAYS",
            "-1",
            "DBOPS_BACKUP_OBJECT_LOCK_MIN_DAYS: Input should be greater than or equal to 0",
        ),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=expected):
        load_settings()


def test_repr_and_dump_hide_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBOPS_DATABASE_URL", "postgresql://app:s3cr3t-pw@db/app")
    settings = Settings()
    assert "s3cr3t-pw" not in repr(settings)
    assert "s3cr3t-pw" not in str(settings.model_dump())
    url = settings.configured_database_url()
    assert url is not None
    assert url.password == "s3cr3t-pw"


def test_a_bad_database_url_parameter_is_a_configuration_error() -> None:
    from pydantic import SecretStr

    from tasks.postgres.engine import resolve_database_url

    with pytest.raises(ConfigurationError, match="the database URL parameter uses 'mysql'") as refused:
        resolve_database_url(load_settings(), SecretStr("mysql://app:s3cr3t-pw@db/app"))
    assert "s3cr3t-pw" not in str(refused.value)
    override = resolve_database_url(load_settings(), SecretStr("postgres://app:pw@db:5433/other"))
    assert (override.host, override.port, override.database) == ("db", 5433, "other")


def test_blank_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBOPS_DATABASE_URL", "")
    monkeypatch.setenv("DBOPS_BACKUP_URL", "   ")
    settings = load_settings()
    assert settings.configured_database_url() is None
    assert settings.backup_url is None


def test_object_lock_is_off_unless_set_and_takes_s3s_spelling_too(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # a Wednesday
    assert load_settings().object_lock_for(taken) is None
    monkeypatch.setenv("DBOPS_BACKUP_OBJECT_LOCK", " ")
    assert load_settings().object_lock_for(taken) is None

    monkeypatch.setenv("DBOPS_BACKUP_OBJECT_LOCK", "GOVERNANCE")
    assert load_settings().object_lock_for(taken) == ObjectLock(
        ObjectLockMode.GOVERNANCE, datetime(2026, 12, 2, tzinfo=UTC)
    ), "by default, until the seventh later day (DBOPS_BACKUP_KEEP_DAILY) starts"
    monkeypatch.setenv("DBOPS_BACKUP_OBJECT_LOCK", "compliance")
    monkeypatch.setenv("DBOPS_BACKUP_OBJECT_LOCK_MIN_DAYS", "30")
    assert load_settings().object_lock_for(taken) == ObjectLock(
        ObjectLockMode.COMPLIANCE, taken + timedelta(days=30)
    )


@pytest.mark.parametrize("field", TIMEOUT_FIELDS)
@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ("inf", "Input should be a finite number"),
        ("-inf", "Input should be a finite number"),
        ("nan", "Input should be a finite number"),
        ("1e20", "must be between 0.001 s"),
        ("2147483.648", "must be between 0.001 s"),
        ("0.0001", "must be between 0.001 s"),  # would reach PostgreSQL as 0 ms: no timeout at all
        ("0.0009999", "must be between 0.001 s"),
        ("-1", "must be between 0.001 s"),
    ],
)
def test_a_timeout_postgresql_cannot_take_is_refused(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str, refused: str
) -> None:
    variable = f"DBOPS_{field.upper()}"
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert f"{variable}" in str(raised.value)
    assert refused in str(raised.value)
    assert "\n" not in str(raised.value)
    assert raised.value.exit_code == 2


@pytest.mark.parametrize("field", TIMEOUT_FIELDS)
def test_a_timeout_within_postgresqls_range_is_kept(monkeypatch: pytest.MonkeyPatch, field: str) -> None:
    for value in (0.001, 1.5, MAX_TIMEOUT_SECONDS):
        monkeypatch.setenv(f"DBOPS_{field.upper()}", str(value))
        read = getattr(load_settings(), field)
        assert read == value
        assert 1 <= int(read * 1000) <= 2_147_483_647  # the milliseconds PostgreSQL is given


@pytest.mark.parametrize("field", TIMEOUT_FIELDS)
def test_zero_is_none_only_where_documented(monkeypatch: pytest.MonkeyPatch, field: str) -> None:
    monkeypatch.setenv(f"DBOPS_{field.upper()}", "0")
    if field in ZERO_DISABLES:
        assert getattr(load_settings(), field) == 0
        return
    with pytest.raises(ConfigurationError, match=r"must be between 0\.001 s and"):
        load_settings()


@pytest.mark.parametrize("field", ["connect_timeout_seconds", "restore_approval_timeout_seconds"])
def test_whole_second_timeouts_are_bounded_too(monkeypatch: pytest.MonkeyPatch, field: str) -> None:
    variable = f"DBOPS_{field.upper()}"
    monkeypatch.setenv(variable, "2147483")
    assert getattr(load_settings(), field) == 2_147_483
    for value, refused in (("2147484", "less than or equal to 2147483"), ("0", "greater than or equal to 1")):
        monkeypatch.setenv(variable, value)
        with pytest.raises(ConfigurationError, match=f"{variable}: Input should be {refused}"):
            load_settings()
