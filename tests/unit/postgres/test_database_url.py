from __future__ import annotations

import pytest

from models.database_url import DRIVER, describe, masked, parse_database_url


@pytest.mark.parametrize(
    "raw",
    [
        "postgres://app:pw@db.internal:5433/platform",
        "postgresql://app:pw@db.internal:5433/platform",
        "postgresql+psycopg2://app:pw@db.internal:5433/platform",
        "  postgresql+psycopg://app:pw@db.internal:5433/platform  ",
    ],
)
def test_every_postgresql_spelling_becomes_the_psycopg_driver(raw: str) -> None:
    url = parse_database_url(raw)
    assert url.drivername == DRIVER
    assert (url.host, url.port, url.database, url.username, url.password) == (
        "db.internal",
        5433,
        "platform",
        "app",
        "pw",
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("mysql://app:s3cr3t-pw@db/app", "uses 'mysql', but dbops only manages PostgreSQL"),
        ("sqlite:///tmp/app.db", "uses 'sqlite', but dbops only manages PostgreSQL"),
        ("host=db user=app password=s3cr3t-pw", "is not a URL"),
        ("postgresql://app:s3cr3t-pw@db:notaport/app", "could not be parsed"),
        ("postgresql://app:s3cr3t-pw@db:5432", "names no database"),
    ],
)
def test_bad_urls_are_refused_without_echoing_the_password(raw: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected) as refused:
        parse_database_url(raw)
    assert "s3cr3t-pw" not in str(refused.value)


def test_masked_and_described_forms_hide_the_password() -> None:
    url = parse_database_url("postgresql://app:s3cr3t-pw@db:5432/platform")
    assert masked(url) == "postgresql+psycopg://app:***@db:5432/platform"
    assert describe(url) == "platform on db:5432"
    assert "s3cr3t-pw" not in repr(url)
