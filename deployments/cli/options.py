"""Options several commands share."""

from __future__ import annotations

from pydantic import SecretStr

from models.database_url import carries_password, split_database_url
from models.errors import ConfigurationError

DATABASE_URL_HELP = "Work on this database (no password: it comes from PGPASSWORD or a pgpass file)."


def password_free_url(raw: str | None) -> SecretStr | None:
    """Command lines are visible to every user of the machine: a password does not belong on one."""
    if raw is None:
        return None
    try:
        url = split_database_url(raw, setting="--database-url")
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    if carries_password(url):
        raise ConfigurationError(
            "--database-url must not contain a password: command lines are visible in the process list",
            hint="drop the password from the URL and put it in PGPASSWORD or a pgpass file (PGPASSFILE)",
        )
    return SecretStr(raw)
