"""Databases a restore creates, marked as dbops's, and dropped only if they are still the ones it created.

A database is remembered by name and OID when it is created; dropping checks that the name still
belongs to that OID, so a restore can never drop a database some other hand created under the same
name meanwhile. Each carries a :class:`~models.marks.DatabaseMark` in its comment from the moment it
exists, so whatever a killed run leaves behind can be told apart from everything else on the server.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from models.database_url import describe
from models.errors import RestoreError, RestoreRefusedError
from models.marks import DatabaseMark
from models.settings import Settings
from tasks.backup.source import count_rows
from tasks.postgres.engine import database_url, make_engine, open_connection, quote_identifier
from tasks.restore.properties import DatabaseProperties, comment_statement, creation_options
from tasks.restore.runs import run_id as run_id  # where the table restore imports it from

_log = logging.getLogger(__name__)
DATABASE_OID = text("SELECT oid::bigint FROM pg_database WHERE datname = :name")
DATABASE_SIZE = text("SELECT pg_database_size(current_database())")
_MAX_NAME = 63


_PRIVILEGES = text("""
    SELECT current_user, r.rolsuper OR r.rolcreatedb,
           (SELECT pg_has_role(current_user, d.datdba, 'MEMBER') FROM pg_database AS d
            WHERE d.datname = :target)
    FROM pg_roles AS r WHERE r.rolname = current_user
""")


def check_privileges(server: URL, settings: Settings, *, target: str | None = None) -> None:
    """Refuse, before any download, a role that could not finish the restore.

    Every restore creates a database (a scratch copy, a replacement, or the target again), and
    replacing an existing *target* (renaming it aside, or dropping it) takes its owner. On a managed
    database that is the norm, not a superuser, so this says which grant is missing. Connecting is
    the first test: an unreachable server fails here too, with nothing recorded.
    """
    with open_connection(make_engine(server, settings, purpose="restore")) as connection:
        role, can_create, owns = connection.execute(_PRIVILEGES, {"target": target or ""}).one()
    if not can_create:
        raise RestoreRefusedError(
            f"role {role} may not create databases on {describe(server)}, which a restore needs; "
            "nothing was done",
            hint=f"ALTER ROLE {quote_identifier(role)} CREATEDB, as a superuser or the provider's admin role",
        )
    if target is not None and owns is False:
        raise RestoreRefusedError(
            f"role {role} does not own database {target}, which replacing it needs; nothing was done",
            hint=f"ALTER DATABASE {quote_identifier(target)} OWNER TO {quote_identifier(role)}, "
            "as its owner or a superuser",
        )


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


def derived_name(target: str, mark: str, now: datetime) -> str:
    """``<target><mark>_<timestamp>``, the target part shortened to fit PostgreSQL's 63 bytes.

    Shortened by bytes, on a character boundary: PostgreSQL cuts a longer name at 63 bytes without a
    word, mid-character if need be, and the database would then not have the name its mark was
    written under.
    """
    suffix = f"{mark}_{now.astimezone(UTC):%Y%m%dt%H%M%S}"
    room = _MAX_NAME - len(suffix.encode())
    return target.encode()[:room].decode(errors="ignore") + suffix


def create_database(
    server: URL,
    settings: Settings,
    name: str,
    *,
    mark: DatabaseMark,
    like: DatabaseProperties | None = None,
    session_settings: dict[str, str] | None = None,
) -> CreatedDatabase:
    """An empty database from ``template0``, as pg_restore wants it, carrying *mark*.

    With *like* (the database it will replace), it gets that one's encoding, locale and default
    tablespace, which only CREATE DATABASE can set. *session_settings* (:func:`scratch_settings`)
    are set on the database, for every session that connects to it.
    """
    options = f" {creation_options(like)}" if like is not None else ""
    engine = make_engine(server, settings, purpose="restore")
    try:
        with open_connection(engine, autocommit=True) as connection:
            try:
                connection.exec_driver_sql(
                    f"CREATE DATABASE {quote_identifier(name)} TEMPLATE template0{options}"
                )
            except DBAPIError as error:
                raise RestoreError(
                    f"could not create database {name} on {describe(server)}",
                    detail=str(error.orig).splitlines()[0] if error.orig is not None else None,
                    hint="the role needs CREATEDB, and CREATE on the tablespace of the database replaced",
                ) from None
            oid = int(connection.execute(DATABASE_OID, {"name": name}).scalar_one())
            try:
                connection.exec_driver_sql(comment_statement(name, mark.render()))
                for setting, value in (session_settings or {}).items():
                    # Utility statements take no parameters; these are our own plain words.
                    assert setting.isidentifier(), setting
                    assert value.isalnum(), value
                    connection.exec_driver_sql(
                        f"ALTER DATABASE {quote_identifier(name)} SET {setting} = '{value}'"
                    )
            except BaseException:  # an unmarked copy would never be swept: better none at all
                connection.exec_driver_sql(f"DROP DATABASE {quote_identifier(name)}")
                raise
    finally:
        engine.dispose()
    _log.info("created database %s on %s", name, describe(server))
    return CreatedDatabase(server=server, name=name, oid=oid)


def scratch_settings(settings: Settings) -> dict[str, str]:
    """What every session of a scratch database starts with, pg_restore's included.

    Only for a copy that is dropped after its proof (a rehearsal's): a commit there need not wait for
    the disk (``synchronous_commit``; a crash loses the copy, never the server's consistency), and its
    index builds sort in memory instead of in temporary files. Never for a copy that takes a live
    database's place, which would keep them.
    """
    return {
        "synchronous_commit": "off",
        "maintenance_work_mem": f"{settings.rehearsal_maintenance_work_mem_mb}MB",
    }


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


@dataclass(frozen=True)
class LiveState:
    """A database as it is now: which one (its OID), its rows per table and its size."""

    oid: int | None
    rows: dict[str, int]
    bytes: int | None


def live_state(server: URL, settings: Settings, name: str) -> LiveState:
    """*name*'s OID, rows and size on *server*; OID None and nothing counted when it does not exist."""
    oid = live_oid(server, settings, name)
    if oid is None:
        return LiveState(None, {}, None)
    engine = make_engine(server.set(database=name), settings, purpose="restore summary")
    try:
        with open_connection(engine) as connection:
            rows = count_rows(connection)
            size = int(connection.execute(DATABASE_SIZE).scalar_one())
    finally:
        engine.dispose()
    return LiveState(oid, rows, size)


def live_oid(server: URL, settings: Settings, name: str) -> int | None:
    engine = make_engine(server, settings, purpose="restore")
    try:
        with open_connection(engine) as connection:
            oid = connection.execute(DATABASE_OID, {"name": name}).scalar()
    finally:
        engine.dispose()
    return None if oid is None else int(oid)
