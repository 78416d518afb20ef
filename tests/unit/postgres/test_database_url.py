from __future__ import annotations

import re

import pytest

from models.database_url import (
    DRIVER,
    carries_password,
    describe,
    masked,
    parse_database_url,
    split_database_url,
)


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
        ("postgresql://app:s3cr3t-pw@db:/app", "could not be parsed"),
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


# Every shape of URL that dbops' own parse must take apart exactly as SQLAlchemy's make_url does.
SHAPES = [
    "postgresql://app:pw@db.internal:5433/platform",
    "postgresql://app@db/platform",
    "postgresql://app:@db/platform",
    "postgresql://db/platform",
    "postgresql:///platform",
    "postgresql:///platform?host=/var/run/postgresql&port=5433",
    "postgresql://app:p%40ss%3Aw%2Fd@db/platform",
    "postgresql://us%65r:pw@db/plat%20form",
    "postgresql://app:pw@[::1]:5432/platform",
    "postgresql://app:pw@[2001:db8::7]/platform?sslmode=verify-full",
    "postgresql://app:pw@db/platform?sslmode=verify-full&sslrootcert=/etc/ca.pem&sslcert=/c.pem&sslkey=/k.pem",
    "postgresql://app:pw@db/platform?options=-c%20statement_timeout%3D5s&application_name=a+b",
    "postgresql://app:pw@db/platform?target_session_attrs=read-write&connect_timeout=10",
    "postgresql://app:pw@db/platform?host=h1&host=h2&z=1&a=2",
    "postgresql://app:pw@db/platform?empty=&sslmode=require",
    "postgresql://app:p@ss@db/platform",
    "postgres://app:pw@db/platform/with/slashes",
]


@pytest.mark.parametrize("raw", SHAPES)
def test_the_parse_and_the_mask_agree_with_sqlalchemy(raw: str) -> None:
    from sqlalchemy.engine import make_url

    expected = make_url(DRIVER + raw[raw.index("://") :])
    parsed = split_database_url(raw)
    assert parsed.to_url() == expected
    assert masked(parsed) == masked(expected) == expected.render_as_string(hide_password=True)
    assert describe(parsed) == describe(expected)


def test_the_parsed_form_never_shows_its_password() -> None:
    parsed = split_database_url("postgresql://app:s3cr3t-pw@db:5432/platform")
    assert "s3cr3t-pw" not in repr(parsed)
    assert "s3cr3t-pw" not in masked(parsed)


@pytest.mark.parametrize(
    ("raw", "has_password"),
    [
        ("postgresql://app:s3cr3t-pw@db/app", True),
        ("postgresql://app@db/app?sslmode=require&password=s3cr3t-pw", True),
        ("postgresql://app@db/app?password=s3cr3t-pw", True),
        ("postgresql://app@db:5432/app?sslmode=require", False),
        ("postgresql://db/app", False),
    ],
)
def test_a_password_is_found_before_the_host_and_in_the_query(raw: str, has_password: bool) -> None:
    parsed = split_database_url(raw)
    assert carries_password(parsed) is has_password
    assert "s3cr3t-pw" not in masked(parsed)
    assert "s3cr3t-pw" not in masked(parsed.to_url())


@pytest.mark.parametrize(
    ("raw", "accepted"),
    [
        ("postgresql://app:s3cr3t-pw@db/app", False),
        ("postgresql://app@db/app?password=s3cr3t-pw", False),
        ("postgresql://app@db/app?sslmode=require&password=s3cr3t-pw", False),
        ("postgresql://app@db:5432/app", True),
        ("postgresql://app@[::1]:5432/app?sslmode=require", True),
        ("postgresql://db/app", True),
    ],
)
def test_the_flow_parameter_schema_refuses_what_carries_a_password(raw: str, accepted: bool) -> None:
    from flows.parameters import PARAMETER_URL_PATTERN

    assert (re.search(PARAMETER_URL_PATTERN, raw) is not None) is accepted
    assert accepted is not carries_password(split_database_url(raw))
