"""How a URL becomes libpq parameters: everything it says, secrets kept out of strings and argv."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from tasks.postgres.libpq import (
    LIBPQ_VARIABLES,
    child_environment,
    connection_parameters,
    conninfo,
    ignore_caller_environment,
    inherited_environment,
    needs_tls,
    pgpass_line,
)

URL_WITH_PASSWORD = URL.create(
    "postgresql+psycopg", username="app", password="p:a\\ss", host="db", port=5433, database="my db"
)
TLS_URL = make_url(
    "postgresql+psycopg://app:secret@db.example:5432/platform?sslmode=verify-full&sslrootcert=/etc/ca.pem"
    "&sslcert=/etc/client.crt&sslkey=/etc/client.key&sslpassword=keypass&options=-c%20work_mem%3D64MB"
    "&target_session_attrs=read-write&connect_timeout=3&application_name=nightly"
)


def parsed(info: str) -> dict[str, str]:
    """A conninfo string back into its parameters (values here carry no spaces but quoted ones)."""
    import shlex

    return dict(part.split("=", 1) for part in shlex.split(info))


def test_conninfo_never_contains_a_secret_and_quotes_values() -> None:
    info = conninfo(URL_WITH_PASSWORD, purpose="test")
    assert info.startswith("keepalives=1 ")
    assert "host=db port=5433 dbname='my db' user=app" in info
    assert "p:a" not in info
    secret = conninfo(TLS_URL, purpose="test")
    assert "secret" not in secret
    assert "keypass" not in secret


def test_every_parameter_of_the_url_reaches_the_connection_string() -> None:
    parameters = parsed(conninfo(TLS_URL, purpose="backup dump"))
    assert parameters["sslmode"] == "verify-full"
    assert parameters["sslrootcert"] == "/etc/ca.pem"
    assert parameters["sslcert"] == "/etc/client.crt"
    assert parameters["sslkey"] == "/etc/client.key"
    assert parameters["options"] == "-c work_mem=64MB"
    assert parameters["target_session_attrs"] == "read-write"
    assert parameters["connect_timeout"] == "3"  # the URL's own, not the default
    assert parameters["application_name"].startswith("nightly: dbops backup dump (")
    assert parameters["service"] == "dbops"  # the key's passphrase comes from the private service file


def test_a_unix_socket_directory_in_the_query_is_the_host() -> None:
    url = make_url("postgresql+psycopg://app:pw@/platform?host=/var/run/postgresql")
    assert parsed(conninfo(url, purpose="test"))["host"] == "/var/run/postgresql"
    assert pgpass_line(url) == "/var/run/postgresql:5432:platform:app:pw\n"


def test_server_options_join_the_urls_options_in_process() -> None:
    parameters = connection_parameters(
        TLS_URL, purpose="migration", connect_timeout=10, options={"lock_timeout": "10s"}
    )
    assert parameters["options"] == "-c work_mem=64MB -c lock_timeout=10s"
    assert parameters["password"] == "secret"
    assert parameters["sslpassword"] == "keypass"
    assert parameters["keepalives"] == "1"


def test_tls_is_needed_only_when_the_url_demands_it() -> None:
    assert needs_tls(TLS_URL)
    assert needs_tls(make_url("postgresql+psycopg://a@h/d?sslmode=require"))
    assert not needs_tls(make_url("postgresql+psycopg://a@h/d?sslmode=prefer"))
    assert not needs_tls(URL_WITH_PASSWORD)


def test_pgpass_line_escapes_colons_and_backslashes() -> None:
    assert pgpass_line(URL_WITH_PASSWORD) == "db:5433:my db:app:p\\:a\\\\ss\n"


def test_password_and_key_passphrase_files_are_private_and_removed_afterwards() -> None:
    with child_environment(TLS_URL) as environment:
        pgpass, service = Path(environment["PGPASSFILE"]), Path(environment["PGSERVICEFILE"])
        for path in (pgpass, service):
            assert path.stat().st_mode & 0o777 == 0o600
        assert pgpass.read_text() == pgpass_line(TLS_URL)
        assert service.read_text() == "[dbops]\nsslpassword=keypass\n"
    assert not pgpass.exists()
    assert not service.exists()


def test_without_a_password_the_operators_own_sources_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    without = URL.create("postgresql+psycopg", username="app", host="db", database="app")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGPASSFILE", raising=False)
    with child_environment(without) as environment:
        assert environment == {}
    monkeypatch.setenv("PGPASSFILE", "/home/operator/.pgpass")
    with child_environment(without) as environment:
        assert environment == {"PGPASSFILE": "/home/operator/.pgpass"}
    with child_environment(URL_WITH_PASSWORD) as environment:
        assert environment["PGPASSFILE"] != "/home/operator/.pgpass"


def test_children_inherit_no_libpq_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LIBPQ_VARIABLES:
        monkeypatch.setenv(name, "wrong")
    monkeypatch.setenv("DBOPS_KEEP", "kept")
    inherited = inherited_environment()
    assert LIBPQ_VARIABLES.isdisjoint(inherited)
    assert inherited["DBOPS_KEEP"] == "kept"


def test_in_process_connections_forget_the_callers_variables_but_the_password_sources(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("PGSERVICE", "PGHOSTADDR", "PGSSLMODE", "PGOPTIONS", "PGPASSWORD"):
        monkeypatch.setenv(name, "wrong")
    ignore_caller_environment()
    assert [
        name for name in ("PGSERVICE", "PGHOSTADDR", "PGSSLMODE", "PGOPTIONS") if name in os.environ
    ] == []
    assert os.environ["PGPASSWORD"] == "wrong"
