"""Parsing and masking of database URLs, without ever letting the password out.

SQLAlchemy's own parse error quotes the whole URL, password included, so parsing goes through here:
every message built in this module names the parts of the URL that are safe to show.

The parse itself is dbops' own, on the standard library, taking a URL apart exactly as SQLAlchemy's
``make_url`` would; SQLAlchemy's :class:`~sqlalchemy.engine.URL` is built from the parts only when an
engine or a child process needs it. Importing SQLAlchemy takes about 0.3 s, which is the whole budget
of ``dbops db-url``, and loading the settings (which checks both database URLs) must not pay for it.
A unit test holds the two parses together on a corpus of URLs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, quote_plus, unquote

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

#: The one driver dbops ships with; every PostgreSQL URL is normalised to it.
DRIVER = "postgresql+psycopg"

_POSTGRES_SCHEMES = {"postgres", "postgresql"}
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")
#: What follows ``scheme://``; the same groups, and the same greed, as SQLAlchemy's URL pattern.
_REST = re.compile(
    r"""
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.X,
)


@dataclass(frozen=True)
class ParsedUrl:
    """A PostgreSQL URL taken apart, for the code that must not import SQLAlchemy to read one."""

    username: str | None
    password: str | None = field(repr=False)
    host: str | None
    port: int | None
    database: str
    #: The query's parameters in the order written; a name given twice keeps both values.
    query: tuple[tuple[str, str], ...] = ()

    def to_url(self) -> URL:
        """The same URL as SQLAlchemy's, for engines and the libpq parameters of every child."""
        from sqlalchemy.engine import URL

        values: dict[str, list[str]] = {}
        for name, value in self.query:
            values.setdefault(name, []).append(value)
        return URL.create(
            DRIVER,
            username=self.username,
            password=self.password,
            host=self.host,
            port=self.port,
            database=self.database,
            query={name: items[0] if len(items) == 1 else items for name, items in values.items()},
        )


def split_database_url(raw: str, *, setting: str = "DBOPS_DATABASE_URL") -> ParsedUrl:
    """Take *raw* apart, refusing anything that is not a PostgreSQL URL naming a database.

    This is the provider check of the original schema's migration lock file: a MySQL or SQLite URL is
    refused here, before any connection, migration or dump is attempted.
    """
    text = raw.strip()
    match = _SCHEME.match(text)
    if match is None:
        raise ValueError(f"{setting} is not a URL; expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
    dialect = match.group("scheme").lower().split("+", 1)[0]
    if dialect not in _POSTGRES_SCHEMES:
        raise ValueError(
            f"{setting} uses '{dialect}', but dbops only manages PostgreSQL; "
            "use a postgresql://USER:PASSWORD@HOST:PORT/DATABASE URL"
        )
    parts = _REST.match(text, match.end())
    port = parts.group("port") if parts else None
    if parts is None or (port is not None and not port.isdigit()):
        raise ValueError(
            f"{setting} could not be parsed; expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
            "(percent-encode special characters in the password)"
        )
    username, password, database = (
        None if parts.group(name) is None else unquote(parts.group(name))
        for name in ("username", "password", "database")
    )
    if not database:
        raise ValueError(f"{setting} names no database; append /DATABASE to the URL")
    query = parts.group("query")
    return ParsedUrl(
        username=username,
        password=password,
        host=parts.group("ipv4host") or parts.group("ipv6host"),
        port=int(port) if port else None,
        database=database,
        query=tuple(parse_qsl(query)) if query is not None else (),
    )


def carries_password(url: ParsedUrl) -> bool:
    """Whether *url* holds a password, after ``user:`` or as libpq's ``?password=`` parameter."""
    return bool(url.password) or any(name == "password" for name, _ in url.query)


def parse_database_url(raw: str, *, setting: str = "DBOPS_DATABASE_URL") -> URL:
    """Return a psycopg URL for *raw*; see :func:`split_database_url` for what is refused."""
    return split_database_url(raw, setting=setting).to_url()


def masked(url: URL | ParsedUrl) -> str:
    """The URL as it may appear in logs, artifacts and error messages.

    A SQLAlchemy URL renders itself; a parsed one is written the same way, so that both read alike.
    libpq's ``?password=`` is masked like the password before the host.
    """
    if not isinstance(url, ParsedUrl):
        if "password" in url.query:
            url = url.update_query_dict({"password": "***"})
        return url.render_as_string(hide_password=True)
    url = replace(
        url, query=tuple((name, "***" if name == "password" else value) for name, value in url.query)
    )
    rendered = DRIVER + "://"
    if url.username is not None:
        rendered += quote(url.username, safe=" +")
        if url.password is not None:
            rendered += ":***"
        rendered += "@"
    if url.host is not None:
        rendered += f"[{url.host}]" if ":" in url.host else url.host
    if url.port is not None:
        rendered += f":{url.port}"
    rendered += "/" + quote(url.database, safe=" +/")
    # Sorted by name, a name's values in the order given, as SQLAlchemy writes a query.
    ordered = sorted(url.query, key=lambda pair: pair[0])
    if ordered:
        rendered += "?" + "&".join(f"{quote_plus(name)}={quote_plus(value)}" for name, value in ordered)
    return rendered


def describe(url: URL | ParsedUrl) -> str:
    """A short human name for the database: ``dbname on host:port``."""
    host = url.host or "local socket"
    port = f":{url.port}" if url.port else ""
    return f"{url.database} on {host}{port}"
