"""Databases a restore creates, and drops only if they are still the ones it created.

A database is remembered by name and OID when it is created; dropping checks that the name still
belongs to that OID, so a restore can never drop a database some other hand created under the same
name meanwhile.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import URL

from models.database_url import describe
from models.settings import Settings
from tasks.postgres.engine import database_url, make_engine, open_connection, quote_identifier

_log = logging.getLogger(__name__)
DATABASE_OID = text("SELECT oid::bigint FROM pg_database WHERE datname = :name")
DATABASE_SIZE = text("SELECT pg_database_size(current_database())")
SERVER_VERSION_NUM = text("SHOW server_version_num")


@dataclass(frozen=True)
class CreatedDatabase:
    server: URL  # the maintenance database the CREATE ran in
    name: str
    oid: int

    @property
    def url(self) -> URL:
        return self.server.set(database=self.name)


def rehearsal_server(settings: Settings) -> URL:
    """DBOPS_REHEARSAL_DATABASE_URL, else the ``postgres`` database of the source's server."""
    return settings.configured_rehearsal_url() or database_url(settings).set(database="postgres")


def server_version_num(server: URL, settings: Settings) -> int:
    """The version of the server a restore loads into, as it reports it (``150014``)."""
    engine = make_engine(server, settings, purpose="restore")
    try:
        with open_connection(engine) as connection:
            return int(connection.execute(SERVER_VERSION_NUM).scalar_one())
    finally:
        engine.dispose()


def timestamped_name(prefix: str, now: datetime | None = None) -> str:
    """``<prefix>_20261127t221500_3fa9``: sortable by time, unique across concurrent runs."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{prefix}_{moment:%Y%m%dt%H%M%S}_{secrets.token_hex(2)}"


def create_database(server: URL, settings: Settings, name: str) -> CreatedDatabase:
    """An empty database from ``template0``, as pg_restore wants it."""
    engine = make_engine(server, settings, purpose="restore")
    try:
        with open_connection(engine, autocommit=True) as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {quote_identifier(name)} TEMPLATE template0")
            oid = int(connection.execute(DATABASE_OID, {"name": name}).scalar_one())
    finally:
        engine.dispose()
    _log.info("created database %s on %s", name, describe(server))
    return CreatedDatabase(server=server, name=name, oid=oid)


def drop_created(
    created: CreatedDatabase,
    settings: Settings,
    *,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> bool:
    """Drop *created*, ending its sessions, if its name still belongs to it; False when it did not."""
    log = logger or _log
    engine = make_engine(created.server, settings, purpose="restore")
    try:
        with open_connection(engine, autocommit=True) as connection:
            oid = connection.execute(DATABASE_OID, {"name": created.name}).scalar()
            if oid is None:
                return False
            if int(oid) != created.oid:
                log.error(
                    "not dropping %s: it is no longer the database this run created (oid %s, not %s)",
                    created.name,
                    oid,
                    created.oid,
                )
                return False
            connection.exec_driver_sql(f"DROP DATABASE {quote_identifier(created.name)} WITH (FORCE)")
    finally:
        engine.dispose()
    log.info("dropped database %s", created.name)
    return True


def database_size(url: URL, settings: Settings) -> int:
    engine = make_engine(url, settings, purpose="restore")
    try:
        with open_connection(engine) as connection:
            return int(connection.execute(DATABASE_SIZE).scalar_one())
    finally:
        engine.dispose()
