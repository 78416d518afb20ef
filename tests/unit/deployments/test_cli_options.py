"""``--database-url``: command lines are visible to every user of the machine, so no password on one."""

from __future__ import annotations

import pytest

from deployments.cli.options import password_free_url
from models.errors import ConfigurationError


@pytest.mark.parametrize(
    "raw",
    ["postgresql://app:s3cr3t-pw@db/app", "postgresql://app@db/app?sslmode=require&password=s3cr3t-pw"],
)
def test_a_password_before_the_host_or_in_the_query_is_refused(raw: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        password_free_url(raw)
    assert "--database-url must not contain a password" in str(refused.value)
    assert "s3cr3t-pw" not in str(refused.value)
    assert refused.value.exit_code == 2


def test_a_url_without_a_password_is_taken() -> None:
    taken = password_free_url("postgresql://app@db:5432/app?sslmode=require")
    assert taken is not None
    assert taken.get_secret_value() == "postgresql://app@db:5432/app?sslmode=require"
