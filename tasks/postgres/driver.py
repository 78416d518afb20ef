"""Plain psycopg connections, for what SQLAlchemy does not do: COPY and server administration.

Connection failures become the same :class:`DatabaseUnavailableError` as everywhere else, with the
password scrubbed from the driver's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import URL

from models.database_url import describe
from models.errors import DatabaseUnavailableError
from tasks.postgres.libpq import connection_parameters, ignore_caller_environment


def connect(
    url: URL,
    *,
    purpose: str,
    autocommit: bool = False,
    connect_timeout: int = 10,
    options: Mapping[str, str] | None = None,
) -> psycopg.Connection[tuple[Any, ...]]:
    """A psycopg connection with every parameter *url* says (TLS included), and nothing else.

    *options* are server settings sent in the startup packet: they hold from the first statement
    without one being run, which on a connection that is not in autocommit mode would open a
    transaction every later ``transaction()`` block only nests inside.
    """
    ignore_caller_environment()
    parameters = connection_parameters(url, purpose=purpose, connect_timeout=connect_timeout, options=options)
    try:
        return psycopg.connect(make_conninfo("", **parameters), autocommit=autocommit)
    except psycopg.OperationalError as error:
        raise unavailable_from_message(url, str(error)) from None


def unavailable_from_message(url: URL, driver_message: str) -> DatabaseUnavailableError:
    """The error for a failed connection; *driver_message* is scrubbed of the password, just in case."""
    lines = driver_message.strip().splitlines()
    detail = lines[0] if lines else ""
    if url.password:
        detail = detail.replace(str(url.password), "***")
    return DatabaseUnavailableError(
        f"cannot connect to PostgreSQL database {describe(url)} as {url.username or 'the default user'}",
        detail=detail,
        hint="check DBOPS_DATABASE_URL and that the server is running and reachable",
    )
