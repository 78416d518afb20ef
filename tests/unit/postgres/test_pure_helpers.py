from __future__ import annotations

import pytest

from tasks.postgres.binaries import parse_major_version
from tasks.postgres.engine import redact_parameters


def test_sql_parameters_are_redacted_but_their_names_kept() -> None:
    assert redact_parameters({"email": "a@b.c", "password_hash": "$2b$..."}) == "{email: ?, password_hash: ?}"
    assert redact_parameters(("secret", 42)) == "(?, ?)"
    assert redact_parameters([{"a": 1}, {"a": 2}]) == "[2 parameter sets redacted]"
    assert redact_parameters(None) == ""


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ("pg_dump (PostgreSQL) 18.6", 18),
        ("psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", 15),
        ("pg_restore (PostgreSQL) 17beta2", 17),
    ],
)
def test_major_version_parsing(output: str, major: int) -> None:
    assert parse_major_version(output) == major


def test_major_version_parsing_refuses_other_output() -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL version line"):
        parse_major_version("command not found")
