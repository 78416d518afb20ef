"""All configuration, read once from ``DBOPS_*`` environment variables and ``.env``.

Every flow, task and CLI verb takes a :class:`Settings` instance rather than reading the environment
itself, so flows run the same way from the CLI, a test or a Prefect worker. Later features add their
fields here and nowhere else.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models.compression import Compression
from models.database_url import parse_database_url, split_database_url
from models.errors import ConfigurationError
from models.retention import ObjectLock, ObjectLockMode, RetentionPolicy, object_lock_until

if TYPE_CHECKING:
    # Only the methods that build engines' URLs return one; loading the settings never imports SQLAlchemy.
    from sqlalchemy.engine import URL


#: PostgreSQL takes its timeouts (lock_timeout, statement_timeout, pg_dump --lock-wait-timeout) as a
#: 32-bit count of milliseconds, and libpq its connect_timeout as a 32-bit count of seconds: this is the
#: longest any of them can be, about 24.8 days.
MAX_TIMEOUT_SECONDS = 2_147_483.647
#: Below one millisecond the count PostgreSQL is given rounds down to 0, which it reads as *no* timeout.
MIN_TIMEOUT_SECONDS = 0.001
#: The timeouts in seconds that reach PostgreSQL (or bound a wait on it) as milliseconds.
TIMEOUT_FIELDS = (
    "lock_wait_timeout_seconds",
    "command_timeout_seconds",
    "migration_lock_timeout_seconds",
    "ddl_lock_timeout_seconds",
    "ddl_statement_timeout_seconds",
    "maintenance_wait_timeout_seconds",
    "review_lock_timeout_seconds",
    "review_plan_timeout_seconds",
    "review_verify_timeout_seconds",
)
#: Of those, the ones whose documented 0 means "no timeout": only an exact 0 does.
ZERO_DISABLES = frozenset({"ddl_statement_timeout_seconds"})
_WHOLE_SECONDS_MAX = int(MAX_TIMEOUT_SECONDS)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """dbops configuration; see the README's configuration reference for each variable."""

    model_config = SettingsConfigDict(
        env_prefix="DBOPS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        allow_inf_nan=False,  # an infinite or NaN number is never a meaningful setting
    )

    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL of the platform database. Unset: an embedded server under DBOPS_HOME.",
    )
    backup_url: str | None = Field(
        default=None,
        description="s3://bucket/prefix or a local directory. Unset: DBOPS_HOME/backups.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="Endpoint of an S3-compatible store (MinIO, R2); unset for AWS."
    )
    environment: Environment = Field(default=Environment.DEVELOPMENT)
    timezone: str = Field(default="UTC", description="IANA time zone for schedules and cut-offs.")
    log_sql: bool = Field(default=False, description="Log every SQL statement, parameters redacted.")
    home: Path = Field(
        default=Path(".dbops"), description="Working directory of the embedded server and backups."
    )
    pg_bindir: Path | None = Field(
        default=None, description="Directory holding pg_dump, pg_restore, initdb and postgres."
    )
    connect_timeout_seconds: int = Field(default=10, ge=1, le=_WHOLE_SECONDS_MAX)
    lock_wait_timeout_seconds: float = Field(
        default=60.0,
        description="How long a backup waits for a table lock (pg_dump --lock-wait-timeout, and the row "
        "counts' lock_timeout) before it fails, naming the session that holds it.",
    )
    command_timeout_seconds: float = Field(
        default=6 * 3600.0,
        description="Wall-clock bound on each pg_dump and pg_restore run (and the backup's snapshot "
        "session): past it the program is stopped and the run fails instead of hanging.",
    )
    migration_lock_timeout_seconds: float = Field(
        default=60.0, description="How long a migration waits for another one to finish."
    )
    ddl_lock_timeout_seconds: float = Field(
        default=2.0, description="lock_timeout for migration DDL, so it never queues forever."
    )
    migration_lock_retries: int = Field(
        default=5,
        ge=0,
        le=100,
        description="How many times a revision whose DDL timed out waiting for a table lock is retried.",
    )
    ddl_statement_timeout_seconds: float = Field(
        default=600.0, description="statement_timeout for migration DDL (0 disables it)."
    )
    migration_max_lock_seconds: float = Field(
        default=5.0,
        gt=0,
        description="dbops migrate --plan fails a revision that holds a lock blocking reads or writes on a "
        "table with rows for longer than this, measured on a restored copy.",
    )
    migration_max_rewrite_mb: float = Field(
        default=100.0,
        gt=0,
        description="dbops migrate --plan fails a revision that rewrites a relation larger than this.",
    )
    admin_email: str = Field(
        default="admin@platform.example",
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="The admin's login.",
    )
    admin_password: SecretStr | None = Field(
        default=None, description="The admin's password; unset outside production: login disabled."
    )
    staff_password: SecretStr | None = Field(
        default=None, description="Password of the seeded staff users; unset: login disabled."
    )
    bcrypt_rounds: int = Field(
        default=12, ge=4, le=31, description="bcrypt cost factor for seeded passwords."
    )
    backup_compression: Compression = Field(default=Compression.ZSTD, description="zstd, gzip or none.")
    # zstd's fastest level: on a 1 GB dump it stores 4% more than level 3 for half the compression CPU,
    # which on a small worker, or one sharing cores with the database, is time the backup waits for.
    backup_compression_level: int = Field(default=1, ge=0, le=22, description="zstd 1-22 or gzip 1-9.")
    backup_compression_threads: int = Field(
        default=-1, ge=-1, description="zstd worker threads; -1 uses every core, 0 compresses in-line."
    )
    backup_parallelism: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="pg_dump processes dumping table data at once, each into a part of its own; unset: the "
        "number of cores, at most the number of large tables; 1 writes one object.",
    )
    backup_age_recipients: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="age public keys (age1...), comma-separated; empty: no encryption."
    )
    backup_incomplete_grace_hours: float = Field(
        default=6.0,
        gt=0,
        description="Backups without a manifest older than this are removed by the next run.",
    )
    backup_heartbeat_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often a running backup rewrites its heartbeat (backups/<id>/running.json); the "
        "sweep counts a backup as running while its heartbeat is under five intervals old.",
    )
    backup_keep_last: int = Field(default=7, ge=0, description="Retention: the N most recent backups.")
    backup_keep_daily: int = Field(default=7, ge=0, description="Retention: the newest of each of D days.")
    backup_keep_weekly: int = Field(default=4, ge=0, description="Retention: the newest of each of W weeks.")
    backup_keep_monthly: int = Field(
        default=12, ge=0, description="Retention: the newest of each of M months."
    )
    backup_object_lock: ObjectLockMode | None = Field(
        default=None,
        description="S3 Object Lock mode (governance or compliance) for every backup's dump and manifest, "
        "locked until the retention policy could prune the backup at the earliest; unset: no lock. The "
        "bucket must have been created with object lock enabled.",
    )
    backup_object_lock_min_days: int = Field(
        default=0,
        ge=0,
        le=36_500,
        description="With DBOPS_BACKUP_OBJECT_LOCK, lock each backup at least this many days after it was "
        "taken, whatever the retention policy allows; 0: the policy alone decides.",
    )
    backup_age_identity_file: Path | None = Field(
        default=None,
        description="age identity file (AGE-SECRET-KEY-1...) to decrypt encrypted backups for restores.",
    )
    rehearsal_database_url: SecretStr | None = Field(
        default=None,
        description="Maintenance database of the server rehearsals restore into; unset: the source's "
        "server, database postgres.",
    )
    restore_jobs: int = Field(default=2, ge=1, le=64, description="pg_restore --jobs for restores.")
    rehearsal_maintenance_work_mem_mb: int = Field(
        default=256,
        ge=64,
        le=8192,
        description="maintenance_work_mem of a rehearsal's scratch database, so that the index builds of "
        "each of its DBOPS_RESTORE_JOBS sessions sort in memory.",
    )
    restore_parallelism: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Data parts of a multi-part backup restored at once, each streamed into its own "
        "pg_restore; unset: the number of cores.",
    )
    stale_after_minutes: float = Field(
        default=60.0,
        ge=0,
        description="How long a scratch database kept by dbops rehearse --keep is held after the run; "
        "and a work directory that does not say which process made it (an earlier release's) belongs "
        "to a run that is gone once untouched this long. Other databases are judged by whether their "
        "run is alive, never by age.",
    )
    restore_keep_set_aside_days: float = Field(
        default=7.0,
        ge=0,
        description="Databases a swap restore set aside (and rollbacks replaced) are dropped after this "
        "many days, at the next restore and in the weekly maintenance.",
    )
    restore_work_dir: Path | None = Field(
        default=None,
        description="Where a restore unpacks the dump (pg_restore --jobs needs a file); "
        "unset: DBOPS_HOME/restore.",
    )
    restore_approval_timeout_seconds: int = Field(
        default=3600,
        ge=1,
        le=_WHOLE_SECONDS_MAX,
        description="How long a restore built and checked in a flow waits for an operator's approval before "
        "it drops the copy and leaves the target untouched.",
    )
    maintenance_wait_timeout_seconds: float = Field(
        default=3600.0,
        description="How long a backup, migration, restore or rehearsal flow waits for another to finish.",
    )
    archive_audit_logs_days: int = Field(
        default=365, ge=1, description="Audit logs older than this many days are archived."
    )
    archive_analytics_events_days: int = Field(
        default=90, ge=1, description="Analytics events older than this many days are archived."
    )
    archive_batch_size: int = Field(
        default=50_000, ge=1, le=1_000_000, description="Rows per archived object (and per delete)."
    )
    archive_compression_level: int = Field(
        default=6, ge=1, le=9, description="gzip level of the log archive's objects."
    )
    alert_webhook_url: SecretStr | None = Field(
        default=None,
        description="Webhook (Slack-compatible) that dbops alerts install points failure alerts at.",
    )
    alert_webhook_allow_private: bool = Field(
        default=False, description="Allow an alert webhook on a private or loopback address."
    )
    validate_parallelism: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Connections the integrity checks run on at once, each in a thread of its own; unset: "
        "this machine's cores when the database is on it (localhost or a Unix socket), else 2, since "
        "PostgreSQL does not say how many cores its server has.",
    )
    validation_work_mem_mb: int = Field(
        default=256, ge=4, description="work_mem for the validation's hash joins and aggregates, in MB."
    )
    review_unused_min_age_days: float = Field(
        default=7.0,
        ge=0,
        description="Index usage counters younger than this make unused-index findings tentative.",
    )
    review_bloat_min_percent: float = Field(
        default=30.0, ge=0, le=100, description="Estimated bloat share above which a relation is reported."
    )
    review_bloat_min_mb: float = Field(
        default=10.0, ge=0, description="Estimated bloat below this many MB is not worth reporting."
    )
    review_seq_scan_min_rows: int = Field(
        default=10_000, ge=0, description="Tables smaller than this are fine to scan sequentially."
    )
    review_seq_scan_min_index_percent: float = Field(
        default=95.0, ge=0, le=100, description="Index use below this share of scans is reported."
    )
    review_dead_tuple_percent: float = Field(
        default=20.0, ge=0, description="Dead tuples above this share of live ones call for VACUUM."
    )
    review_maintenance_min_rows: int = Field(
        default=1_000, ge=0, description="Dead or changed rows below this never call for VACUUM or ANALYZE."
    )
    review_analyze_max_age_days: float = Field(
        default=7.0,
        gt=0,
        description="Planner statistics older than this, with rows changed since, are stale.",
    )
    review_slow_query_min_calls: int = Field(
        default=100, ge=1, description="Slow queries: at least this many calls."
    )
    review_slow_query_min_mean_ms: float = Field(
        default=20.0, ge=0, description="Slow queries: at least this mean time per call, in milliseconds."
    )
    review_lock_timeout_seconds: float = Field(
        default=5.0, description="lock_timeout in the recommended SQL and for --apply."
    )
    review_workload_statements: int = Field(
        default=50, ge=1, le=1_000, description="Workload advice: the top statements by total time."
    )
    review_workload_min_calls: int = Field(
        default=10, ge=1, description="Workload advice: statements called fewer times are left out."
    )
    review_plan_timeout_seconds: float = Field(
        default=5.0, description="Workload advice: statement_timeout for planning each statement."
    )
    review_min_speedup: float = Field(
        default=2.0,
        gt=1.0,
        description="--verify: an advised index is recommended only when every statement it serves "
        "measured at least this many times faster on the restored copy.",
    )
    review_verify_runs: int = Field(
        default=5, ge=1, le=50, description="--verify: timed runs of each statement (the median counts)."
    )
    review_verify_timeout_seconds: float = Field(
        default=60.0, description="--verify: statement_timeout for each statement run on the copy."
    )
    seed_file: Path | None = Field(
        default=None, description="Seed YAML; unset: the bundled models/seed.yaml."
    )

    @field_validator(
        "database_url",
        "backup_url",
        "s3_endpoint_url",
        "admin_password",
        "staff_password",
        "pg_bindir",
        "seed_file",
        "backup_age_identity_file",
        "rehearsal_database_url",
        "restore_work_dir",
        "alert_webhook_url",
        "backup_object_lock",
        mode="before",
    )
    @classmethod
    def _blank_means_unset(cls, value: object) -> object:
        """An empty variable (``DBOPS_BACKUP_URL=``, or compose's ``${VAR:-}``) is the same as none."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(*TIMEOUT_FIELDS)
    @classmethod
    def _a_postgresql_timeout(cls, value: float, info: ValidationInfo) -> float:
        """Within what PostgreSQL can express, and never a non-zero value that would reach it as 0 ms."""
        field = str(info.field_name)
        name = f"DBOPS_{field.upper()}"
        if value == 0 and field in ZERO_DISABLES:
            return value
        if not MIN_TIMEOUT_SECONDS <= value <= MAX_TIMEOUT_SECONDS:
            zero = " (or exactly 0 for none)" if field in ZERO_DISABLES else ""
            raise ValueError(
                f"{name} is {value:g} s; it must be between 0.001 s{zero} and 2147483.647 s: "
                "PostgreSQL counts timeouts in whole milliseconds, where 0 ms means none and a 32-bit "
                "count stops at 2147483647 ms"
            )
        return value

    @field_validator("backup_object_lock", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        """S3 spells the modes in capitals (``GOVERNANCE``), so both spellings are taken."""
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("backup_age_recipients", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("backup_age_recipients")
    @classmethod
    def _age_public_keys(cls, value: list[str]) -> list[str]:
        for recipient in value:
            if not recipient.startswith("age1"):
                raise ValueError(f"{recipient[:12]}... is not an age public key; they start with age1")
        return value

    @field_validator("database_url", "rehearsal_database_url")
    @classmethod
    def _must_be_postgresql(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            split_database_url(value.get_secret_value(), setting=f"DBOPS_{str(info.field_name).upper()}")
        return value

    @field_validator("admin_email", mode="before")
    @classmethod
    def _normalise_email(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("timezone")
    @classmethod
    def _must_be_a_known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin") from None
        return value

    def configured_rehearsal_url(self) -> URL | None:
        """The rehearsal server's maintenance database from DBOPS_REHEARSAL_DATABASE_URL, if set."""
        if self.rehearsal_database_url is None:
            return None
        return parse_database_url(
            self.rehearsal_database_url.get_secret_value(), setting="DBOPS_REHEARSAL_DATABASE_URL"
        )

    def configured_database_url(self) -> URL | None:
        """The URL from DBOPS_DATABASE_URL, or None when the embedded server should be used."""
        if self.database_url is None:
            return None
        return parse_database_url(self.database_url.get_secret_value())

    @property
    def embedded_server_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def retention_policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            keep_last=self.backup_keep_last,
            keep_daily=self.backup_keep_daily,
            keep_weekly=self.backup_keep_weekly,
            keep_monthly=self.backup_keep_monthly,
        )

    def object_lock_for(self, taken: datetime) -> ObjectLock | None:
        """The lock a backup taken at *taken* is written with; None without DBOPS_BACKUP_OBJECT_LOCK."""
        if self.backup_object_lock is None:
            return None
        return ObjectLock(
            self.backup_object_lock,
            object_lock_until(taken, self.retention_policy, self.timezone, self.backup_object_lock_min_days),
        )

    @property
    def effective_backup_url(self) -> str:
        return self.backup_url or str(self.home / "backups")

    def archive_retention_days(self, table: str) -> int:
        return {
            "audit_logs": self.archive_audit_logs_days,
            "analytics_events": self.archive_analytics_events_days,
        }[table]

    @property
    def effective_restore_work_dir(self) -> Path:
        return self.restore_work_dir or self.home / "restore"


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning validation failures into one operator-readable line.

    pydantic's own message quotes the offending input, which for DBOPS_DATABASE_URL would print the
    password; only the field name and the reason are kept here.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = []
        for item in error.errors(include_input=False, include_url=False):
            field = "_".join(str(part) for part in item["loc"]).upper()
            reason = str(item["msg"]).removeprefix("Value error, ")
            name = f"DBOPS_{field}"
            problems.append(reason if reason.startswith(name) else f"{name}: {reason}")
        raise ConfigurationError(
            "invalid configuration",
            detail="; ".join(problems),
            hint="fix the DBOPS_* environment variables or the .env file",
        ) from None
