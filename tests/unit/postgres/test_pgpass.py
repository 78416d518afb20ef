from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL

from tasks.postgres.pgpass import conninfo, password_environment, pgpass_line

URL_WITH_PASSWORD = URL.create(
    "postgresql+psycopg", username="app", password="p:a\\ss", host="db", port=5433, database="my db"
)


def test_conninfo_never_contains_the_password_and_quotes_values() -> None:
    assert conninfo(URL_WITH_PASSWORD) == "host=db port=5433 dbname='my db' user=app"


def test_pgpass_line_escapes_colons_and_backslashes() -> None:
    assert pgpass_line(URL_WITH_PASSWORD) == "db:5433:my db:app:p\\:a\\\\ss\n"


def test_password_file_is_private_and_removed_afterwards() -> None:
    with password_environment(URL_WITH_PASSWORD) as environment:
        path = Path(environment["PGPASSFILE"])
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text() == pgpass_line(URL_WITH_PASSWORD)
    assert not path.exists()


def test_no_password_means_no_pgpass_override() -> None:
    without = URL.create("postgresql+psycopg", username="app", host="db", database="app")
    with password_environment(without) as environment:
        assert environment == {}
