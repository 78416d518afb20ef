"""What a database URL says, handed alike to every connection dbops makes: SQLAlchemy, psycopg, pg_*.

Patroni's rule: everything the URL says (TLS mode and files, ``options``, ``target_session_attrs``, a
Unix-socket ``host=/path`` query parameter, ...) reaches every connection; the password never reaches
a connection string. pg_* children read it from a temporary 0600 pgpass file instead.

The caller's own libpq environment never reaches a connection either. libpq reads ``PGHOST``,
``PGSSLMODE``, ``PGSERVICE`` and the rest for any parameter a connection string leaves out, and
``PGPASSWORD`` even wins over the pgpass file dbops hands its children. A psql habit in the
operator's shell could otherwise send a child to another server, as another user, or without the
certificate check the URL asked for. The one exception is where the password comes from when the URL
has none: then ``PGPASSWORD`` and ``PGPASSFILE`` (or ``~/.pgpass``) are the operator's to use.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy.engine import URL

#: Every environment variable libpq consults for a connection parameter or session default.
LIBPQ_VARIABLES = frozenset(
    {
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGDATABASE",
        "PGUSER",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGREQUIREAUTH",
        "PGCHANNELBINDING",
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGSYSCONFDIR",
        "PGOPTIONS",
        "PGAPPNAME",
        "PGSSLMODE",
        "PGREQUIRESSL",
        "PGSSLNEGOTIATION",
        "PGSSLCOMPRESSION",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGSSLCERTMODE",
        "PGSSLROOTCERT",
        "PGSSLCRL",
        "PGSSLCRLDIR",
        "PGSSLSNI",
        "PGSSLMINPROTOCOLVERSION",
        "PGSSLMAXPROTOCOLVERSION",
        "PGREQUIREPEER",
        "PGGSSENCMODE",
        "PGKRBSRVNAME",
        "PGGSSLIB",
        "PGGSSDELEGATION",
        "PGCONNECT_TIMEOUT",
        "PGCLIENTENCODING",
        "PGTARGETSESSIONATTRS",
        "PGLOADBALANCEHOSTS",
        "PGMINPROTOCOLVERSION",
        "PGMAXPROTOCOLVERSION",
        "PGDATESTYLE",
        "PGTZ",
        "PGGEQO",
    }
)
#: Where the password comes from when the URL has none: the operator's own choice.
PASSWORD_SOURCES = frozenset({"PGPASSWORD", "PGPASSFILE"})
#: Parameters that never appear in a connection string, a log line or an argument list.
SECRETS = frozenset({"password", "sslpassword"})
#: TCP keepalives, unless the URL sets its own: a server that vanishes (a failover, a dropped NAT
#: entry) is noticed within about two minutes instead of hanging a nightly job until the kernel's
#: two-hour default.
KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "60",
    "keepalives_interval": "10",
    "keepalives_count": "6",
}
#: The sslmode values that need a libpq built with SSL support.
TLS_MODES = frozenset({"require", "verify-ca", "verify-full"})
#: The service name of the private service file that carries a client key's passphrase to children.
_SERVICE = "dbops"

_log = logging.getLogger(__name__)
_ignored_reported: set[str] = set()


def url_parameters(url: URL) -> dict[str, str]:
    """Every libpq parameter *url* sets, secrets included: host, port, dbname, user, password, and each
    query parameter (``host`` there names a Unix-socket directory and wins over the URL's host)."""
    parameters = {
        "host": url.host,
        "port": str(url.port) if url.port else None,
        "dbname": url.database,
        "user": url.username,
        "password": str(url.password) if url.password else None,
    }
    for key, value in url.query.items():
        parameters[key] = value if isinstance(value, str) else ",".join(value)
    return {key: value for key, value in parameters.items() if value}


def connection_parameters(
    url: URL, *, purpose: str, connect_timeout: int, options: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The parameters of one connection to *url*, secrets included, for an in-process driver.

    The URL's own parameters win, except that ``application_name`` always names dbops and the job
    (the lock-holder reports and the crash sweep find dbops sessions by it), and server *options*
    (``-c name=value``) are added to the URL's ``options``.
    """
    parameters = KEEPALIVES | {"connect_timeout": str(connect_timeout)} | url_parameters(url)
    ours = f"dbops {purpose} ({socket.gethostname()}:{os.getpid()})"
    theirs = parameters.get("application_name")
    parameters["application_name"] = (f"{theirs}: {ours}" if theirs else ours)[:63]
    settings = " ".join(f"-c {name}={value}" for name, value in (options or {}).items())
    if settings:
        parameters["options"] = f"{parameters['options']} {settings}" if "options" in parameters else settings
    return parameters


def conninfo(url: URL, *, purpose: str, connect_timeout: int = 10) -> str:
    """A libpq ``key=value`` connection string for a pg_* child, without any secret.

    Pair it with :func:`child_environment`, which supplies the password (and a client key's
    passphrase) through private files.
    """
    parameters = connection_parameters(url, purpose=purpose, connect_timeout=connect_timeout)
    if "sslpassword" in parameters:
        parameters["service"] = _SERVICE
    return " ".join(f"{key}={_quote(value)}" for key, value in parameters.items() if key not in SECRETS)


def needs_tls(url: URL) -> bool:
    """Whether *url* demands TLS, so only a pg_* program built with SSL support can serve it."""
    parameters = url_parameters(url)
    return parameters.get("sslmode") in TLS_MODES or parameters.get("sslnegotiation") == "direct"


def pgpass_line(url: URL) -> str:
    """One pgpass entry matching exactly the host (or socket directory), port, database and user."""
    parameters = url_parameters(url)
    fields = [
        parameters.get("host", "localhost"),
        parameters.get("port", "5432"),
        parameters.get("dbname", "*"),
        parameters.get("user", "*"),
        parameters.get("password", ""),
    ]
    return ":".join(_escape(field) for field in fields) + "\n"


@contextmanager
def child_environment(url: URL) -> Iterator[dict[str, str]]:
    """The environment variables a pg_* child of :func:`~tasks.postgres.command.run_pg_program`
    needs to log in to *url*; the wrapper has already removed every libpq variable of the caller's.

    With a password in the URL, a private pgpass file carries it (and a private service file any
    ``sslpassword``); the files are removed when the block ends. Without one, the operator's own
    ``PGPASSWORD`` or ``PGPASSFILE`` is passed through, so their usual setup keeps working.
    """
    parameters = url_parameters(url)
    with ExitStack() as files:
        environment: dict[str, str] = {}
        if "password" in parameters:
            environment["PGPASSFILE"] = str(files.enter_context(_private_file("pgpass", pgpass_line(url))))
        else:
            environment |= {name: os.environ[name] for name in PASSWORD_SOURCES if name in os.environ}
        if "sslpassword" in parameters:
            entry = f"[{_SERVICE}]\nsslpassword={parameters['sslpassword']}\n"
            environment["PGSERVICEFILE"] = str(files.enter_context(_private_file("service", entry)))
        yield environment


def inherited_environment() -> dict[str, str]:
    """This process's environment for a child, without any of the caller's libpq variables."""
    return {name: value for name, value in os.environ.items() if name not in LIBPQ_VARIABLES}


def ignore_caller_environment() -> None:
    """Remove the caller's libpq variables from this process, for its in-process connections.

    psycopg's libpq reads the same variables as a child does, and a connection string cannot unset
    one (``PGSERVICE`` or ``PGHOSTADDR`` apply whenever the URL is silent). dbops's processes are its
    own (the CLI, or a Prefect flow run's process), so the variables are dropped once; the password
    sources stay, since an explicit password in the URL wins over them anyway.
    """
    ignored = sorted(name for name in LIBPQ_VARIABLES - PASSWORD_SOURCES if name in os.environ)
    for name in ignored:
        os.environ.pop(name, None)
    fresh = [name for name in ignored if name not in _ignored_reported]
    if fresh:
        _ignored_reported.update(fresh)
        _log.info(
            "ignoring %s from the environment: the database URL alone says how to connect", ", ".join(fresh)
        )


@contextmanager
def _private_file(kind: str, content: str) -> Iterator[Path]:
    descriptor, name = tempfile.mkstemp(prefix="dbops-", suffix=f".{kind}")
    path = Path(name)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _quote(value: str) -> str:
    if value and not any(char in value for char in " '\\"):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")
