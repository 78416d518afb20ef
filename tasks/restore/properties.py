"""A database's own properties, which a dump without ``--create`` does not carry, passed to its
replacement.

A restore builds a new database and gives it the old one's name. pg_dump leaves out what belongs to
the database rather than to its contents: the owner, the ACL (``REVOKE CONNECT ... FROM PUBLIC``,
``GRANT CONNECT ... TO app``), ``ALTER DATABASE ... SET`` and ``ALTER ROLE ... IN DATABASE ... SET``
settings, the comment, the default tablespace, the connection limit, and the encoding and locale it
was created with. Without them the application's login, its search path or its statement timeout
would silently change with the restore.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.engine import Connection

from tasks.postgres.engine import quote_identifier

_DATABASE = text("""
    SELECT pg_get_userbyid(d.datdba), d.datacl IS NULL, pg_encoding_to_char(d.encoding),
           d.datcollate::text, d.datctype::text, d.datlocprovider::text, d.datconnlimit, t.spcname,
           shobj_description(d.oid, 'pg_database')
    FROM pg_database AS d JOIN pg_tablespace AS t ON t.oid = d.dattablespace
    WHERE d.datname = :name
""")
_ACL = text("""
    SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
           a.privilege_type, a.is_grantable
    FROM pg_database AS d, aclexplode(d.datacl) AS a
    WHERE d.datname = :name
    ORDER BY 1, 2
""")
_SETTINGS = text("""
    SELECT coalesce(r.rolname, ''), unnest(s.setconfig)
    FROM pg_db_role_setting AS s
    JOIN pg_database AS d ON d.oid = s.setdatabase
    LEFT JOIN pg_roles AS r ON r.oid = s.setrole
    WHERE d.datname = :name
    ORDER BY 1, 2
""")
#: Settings whose value is a list that PostgreSQL stores already quoted (GUC_LIST_QUOTE in guc.c).
_LIST_SETTINGS = frozenset(
    {"search_path", "temp_tablespaces", "session_preload_libraries", "local_preload_libraries"}
)


@dataclass(frozen=True)
class DatabaseProperties:
    owner: str
    encoding: str
    collate: str
    ctype: str
    provider: str  # 'c' libc, 'i' ICU, 'b' builtin
    locale: str | None  # the ICU or builtin locale
    connection_limit: int
    tablespace: str
    comment: str | None
    #: (grantee or PUBLIC, privilege, grantable); None while the database has the default ACL.
    acl: list[tuple[str, str, bool]] | None
    #: ``name=value`` of ALTER DATABASE ... SET, and (role, ``name=value``) of ALTER ROLE ... IN DATABASE.
    settings: list[str] = field(default_factory=list)
    role_settings: list[tuple[str, str]] = field(default_factory=list)


def read_properties(connection: Connection, name: str) -> DatabaseProperties | None:
    """The properties of database *name*, or None if there is no such database."""
    row = connection.execute(_DATABASE, {"name": name}).first()
    if row is None:
        return None
    owner, default_acl, encoding, collate, ctype, provider, limit, tablespace, comment = row
    acl = (
        None
        if default_acl
        else [(str(g), str(p), bool(o)) for g, p, o in connection.execute(_ACL, {"name": name})]
    )
    settings, role_settings = [], []
    for role, setting in connection.execute(_SETTINGS, {"name": name}):
        if role:
            role_settings.append((str(role), str(setting)))
        else:
            settings.append(str(setting))
    return DatabaseProperties(
        owner=str(owner),
        encoding=str(encoding),
        collate=str(collate),
        ctype=str(ctype),
        provider=str(provider),
        locale=_locale(connection, name) if provider != "c" else None,
        connection_limit=int(limit),
        tablespace=str(tablespace),
        comment=comment,
        acl=acl,
        settings=settings,
        role_settings=role_settings,
    )


def creation_options(properties: DatabaseProperties) -> str:
    """The CREATE DATABASE options that can be given only when a database is created."""
    options = [
        f"ENCODING {_literal(properties.encoding)}",
        f"LC_COLLATE {_literal(properties.collate)}",
        f"LC_CTYPE {_literal(properties.ctype)}",
    ]
    if properties.tablespace != "pg_default":  # naming it needs CREATE on it, which roles lack
        options.append(f"TABLESPACE {quote_identifier(properties.tablespace)}")
    if properties.provider == "i" and properties.locale:
        options.append(f"LOCALE_PROVIDER icu ICU_LOCALE {_literal(properties.locale)}")
    elif properties.provider == "b" and properties.locale:
        options.append(f"LOCALE_PROVIDER builtin BUILTIN_LOCALE {_literal(properties.locale)}")
    return " ".join(options)


def granting_statements(name: str, properties: DatabaseProperties) -> list[str]:
    """What gives database *name* the owner, ACL, settings and connection limit of *properties*.

    The comment is left to the caller: a database dbops builds carries its mark until it takes the
    target's place.
    """
    database = quote_identifier(name)
    statements = [f"ALTER DATABASE {database} OWNER TO {quote_identifier(properties.owner)}"]
    if properties.acl is not None:
        statements += [
            f"REVOKE ALL ON DATABASE {database} FROM PUBLIC",
            f"REVOKE ALL ON DATABASE {database} FROM {quote_identifier(properties.owner)}",
        ]
        statements += [
            f"GRANT {privilege} ON DATABASE {database} TO {_grantee(grantee)}"
            + (" WITH GRANT OPTION" if grantable else "")
            for grantee, privilege, grantable in properties.acl
        ]
    statements += [f"ALTER DATABASE {database} SET {_setting(setting)}" for setting in properties.settings]
    statements += [
        f"ALTER ROLE {quote_identifier(role)} IN DATABASE {database} SET {_setting(setting)}"
        for role, setting in properties.role_settings
    ]
    if properties.connection_limit != -1:
        statements.append(f"ALTER DATABASE {database} CONNECTION LIMIT {properties.connection_limit}")
    return statements


def comment_statement(name: str, comment: str | None) -> str:
    return f"COMMENT ON DATABASE {quote_identifier(name)} IS {_literal(comment) if comment else 'NULL'}"


def _locale(connection: Connection, name: str) -> str | None:
    # PostgreSQL 17 renamed daticulocale to datlocale when it added the builtin provider.
    version = int(connection.execute(text("SELECT current_setting('server_version_num')")).scalar_one())
    column = "datlocale" if version >= 170000 else "daticulocale"
    value = connection.execute(
        text(f"SELECT {column}::text FROM pg_database WHERE datname = :name"), {"name": name}
    ).scalar()
    return str(value) if value else None


def _setting(setting: str) -> str:
    """``name TO value`` from a stored ``name=value``: list settings as stored, the rest as a literal."""
    name, value = setting.split("=", 1)
    return f"{name} TO {value if name in _LIST_SETTINGS else _literal(value)}"


def _grantee(grantee: str) -> str:
    return "PUBLIC" if grantee == "PUBLIC" else quote_identifier(grantee)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
