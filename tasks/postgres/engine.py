"""SQLAlchemy engines and connections (``tasks.postgres.driver`` has the plain psycopg ones for COPY).

Connection failures become :class:`DatabaseUnavailableError` with the server named and the password
left out, and ``DBOPS_LOG_SQL`` turns on statement logging with parameter values redacted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from models.database_url import parse_database_url
from models.errors import ConfigurationError, DatabaseUnavailableError
from models.settings import Settings
from tasks.postgres.binaries import resolve_bindir
from tasks.postgres.libpq import connection_parameters, ignore_caller_environment

if TYPE_CHECKING:
    from sqlalchemy.sql.compiler import IdentifierPreparer

sql_log = logging.getLogger("dbops.sql")


def quote_identifier(name: str) -> str:
    """*name* as an SQL identifier, quoted only where PostgreSQL needs it."""
    return str(_preparer().quote(name))


@cache
def _preparer() -> IdentifierPreparer:
    # Imported on first use: the dialect costs ~35 ms of start-up that dbops db-url never needs.
    from sqlalchemy.dialects import postgresql

    return postgresql.dialect().identifier_preparer  # type: ignore[no-untyped-call]


def database_url(settings: Settings) -> URL:
    """The URL dbops works on: DBOPS_DATABASE_URL, or the embedded server (started if needed)."""
    configured = settings.configured_database_url()
    if configured is not None:
        return configured
    # Imported here: the embedded server brings psycopg, which a configured URL never needs (dbops db-url).
    from tasks.postgres.embedded import ensure_running

    # Preloaded so the index review can read the workload (pg_stat_statements takes a start to load).
    server = ensure_running(
        settings.embedded_server_dir,
        resolve_bindir(settings.pg_bindir),
        server_settings={"shared_preload_libraries": "pg_stat_statements"},
    )
    return server.url()


def resolve_database_url(settings: Settings, override: SecretStr | None = None) -> URL:
    """*override* (a flow parameter naming another database), else :func:`database_url`."""
    if override is None:
        return database_url(settings)
    try:
        return parse_database_url(override.get_secret_value(), setting="the database URL parameter")
    except ValueError as error:
        raise ConfigurationError(
            str(error), hint="pass a postgresql:// URL, or none to use DBOPS_DATABASE_URL"
        ) from None


def make_engine(
    url: URL,
    settings: Settings,
    *,
    purpose: str,
    server_settings: Mapping[str, str] | None = None,
    isolation_level: str | None = None,
) -> Engine:
    """An engine for one job. *purpose* becomes the ``application_name`` seen in pg_stat_activity,
    and every parameter of *url* reaches each connection (:func:`tasks.postgres.libpq.connection_parameters`).

    *server_settings* are sent in the startup packet (``-c name=value``), so they hold for the whole
    session without a statement being run first; Alembic needs the connection untouched before it
    configures its context.
    """
    ignore_caller_environment()
    connect_args = connection_parameters(
        url, purpose=purpose, connect_timeout=settings.connect_timeout_seconds, options=server_settings
    )
    engine_options: dict[str, Any] = {"poolclass": NullPool, "connect_args": connect_args}
    if isolation_level is not None:
        engine_options["isolation_level"] = isolation_level
    engine = create_engine(url, **engine_options)
    if settings.log_sql:
        event.listen(engine, "before_cursor_execute", _log_statement)
    return engine


def open_connection(engine: Engine, *, autocommit: bool = False) -> Connection:
    """Connect, turning "cannot reach or log in" into a :class:`DatabaseUnavailableError`."""
    try:
        connection = engine.connect()
    except OperationalError as error:
        raise unavailable(engine.url, error) from None
    return connection.execution_options(isolation_level="AUTOCOMMIT") if autocommit else connection


def check_connection(engine: Engine) -> None:
    """Fail fast, with the server named, when the database cannot be reached or refuses us."""
    with open_connection(engine) as connection:
        connection.execute(text("SELECT 1"))


def unavailable(url: URL, error: OperationalError) -> DatabaseUnavailableError:
    from tasks.postgres.driver import unavailable_from_message  # psycopg: loaded by now, not at start-up

    return unavailable_from_message(url, str(error.orig) if error.orig is not None else "")


def _log_statement(
    connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    sql_log.info("%s %s", " ".join(statement.split()), redact_parameters(parameters))


def redact_parameters(parameters: Any) -> str:
    """Parameter names (or positions) with every value replaced: values may be passwords or PII."""
    if not parameters:
        return ""
    if isinstance(parameters, Mapping):
        return "{" + ", ".join(f"{key}: ?" for key in parameters) + "}"
    if (
        isinstance(parameters, (list, tuple))
        and parameters
        and isinstance(parameters[0], (Mapping, list, tuple))
    ):
        return f"[{len(parameters)} parameter sets redacted]"
    return "(" + ", ".join("?" for _ in parameters) + ")"
