"""Parsing and masking of database URLs, without ever letting the password out.

SQLAlchemy's own parse error quotes the whole URL, password included, so parsing goes through here:
every message built in this module names the parts of the URL that are safe to show.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

#: The one driver dbops ships with; every PostgreSQL URL is normalised to it.
DRIVER = "postgresql+psycopg"

_POSTGRES_SCHEMES = {"postgres", "postgresql"}
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")


def parse_database_url(raw: str, *, setting: str = "DBOPS_DATABASE_URL") -> URL:
    """Return a psycopg URL for *raw*, refusing anything that is not PostgreSQL.

    This is the provider check of the original schema's migration lock file: a MySQL or SQLite URL is
    refused here, before any connection, migration or dump is attempted.
    """
    match = _SCHEME.match(raw.strip())
    if match is None:
        raise ValueError(f"{setting} is not a URL; expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
    scheme = match.group("scheme").lower()
    dialect = scheme.split("+", 1)[0]
    if dialect not in _POSTGRES_SCHEMES:
        raise ValueError(
            f"{setting} uses '{dialect}', but dbops only manages PostgreSQL; "
            "use a postgresql://USER:PASSWORD@HOST:PORT/DATABASE URL"
        )
    try:
        url = make_url(DRIVER + raw.strip()[len(scheme) :])
    except (ArgumentError, ValueError):
        raise ValueError(
            f"{setting} could not be parsed; expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
            "(percent-encode special characters in the password)"
        ) from None
    if not url.database:
        raise ValueError(f"{setting} names no database; append /DATABASE to the URL")
    return url


def masked(url: URL) -> str:
    """The URL as it may appear in logs, artifacts and error messages."""
    return url.render_as_string(hide_password=True)


def describe(url: URL) -> str:
    """A short human name for the database: ``dbname on host:port``."""
    host = url.host or "local socket"
    port = f":{url.port}" if url.port else ""
    return f"{url.database} on {host}{port}"
