"""What a backup records about the database it reads: its source, server version, revision and rows.

Apart from the dump itself so that restores, which compare a copy with what a backup recorded, read
these facts the same way without the dump machinery.
"""

from __future__ import annotations

import hashlib
from typing import Any, cast

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection

from models.backup import BackupSource
from models.errors import DatabaseUnavailableError
from models.settings import Settings
from tasks.postgres.engine import make_engine, open_connection, quote_identifier

TABLES_IN_SCHEMA = text("""
    SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename
""")


def count_rows(connection: Connection) -> dict[str, int]:
    tables = [str(name) for name in connection.execute(TABLES_IN_SCHEMA).scalars()]
    if not tables:
        return {}
    union = " UNION ALL ".join(
        f"SELECT {index} AS position, count(*) FROM {quote_identifier(name)}"
        for index, name in enumerate(tables)
    )
    counted = {int(row[0]): int(row[1]) for row in connection.execute(text(union))}
    return {name: int(counted[index]) for index, name in enumerate(tables)}


def reported_server_version(connection: Connection) -> tuple[str, int]:
    """The version the server announced when the session started, and its major number.

    That announcement, not ``SHOW server_version``, is what libpq and so pg_dump compare themselves
    with, so choosing pg_dump by it matches the check pg_dump is about to make.
    """
    info = cast("psycopg.Connection[Any]", connection.connection.driver_connection).info
    return info.parameter_status("server_version") or str(info.server_version), info.server_version // 10000


def database_source(url: URL, settings: Settings) -> BackupSource:
    """The source *url* would be as a backup's, or just its name where its server cannot be reached
    (a rehearsal may well run while the production server is down)."""
    try:
        with open_connection(make_engine(url, settings, purpose="backup source")) as connection:
            return read_source(connection)
    except DatabaseUnavailableError:
        return BackupSource(database=str(url.database))


def read_source(connection: Connection) -> BackupSource:
    """The database being backed up, identified by its server's system identifier and its name."""
    row = connection.execute(
        text("SELECT (SELECT system_identifier::text FROM pg_control_system()), current_database()")
    ).one()
    return BackupSource(system_identifier=row[0], database=row[1])


def alembic_revision(connection: Connection) -> str | None:
    exists = connection.execute(text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar_one()
    if not exists:
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def recipient_fingerprint(recipient: str) -> str:
    return "sha256:" + hashlib.sha256(recipient.encode()).hexdigest()[:16]
