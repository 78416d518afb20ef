"""The SQL a finding recommends: concurrent index builds and drops under a ``lock_timeout``.

Every index change is written so it can run on a live database: ``CONCURRENTLY`` keeps reads and
writes going while it works, and the ``lock_timeout`` makes it give up rather than queue behind a long
transaction (and so stall everything queued behind it).
"""

from __future__ import annotations

import re

from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, Index

from models.settings import Settings
from tasks.postgres.engine import quote_identifier

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
quote = quote_identifier
_CREATE_INDEX = re.compile(r"^CREATE (UNIQUE )?INDEX (CONCURRENTLY )?")


def lock_timeout(seconds: float) -> str:
    return f"SET lock_timeout = '{int(seconds * 1000)}ms'"


def bounded(settings: Settings, *body: str) -> list[str]:
    """*body* preceded by the ``lock_timeout`` every recommended statement runs under."""
    return [lock_timeout(settings.review_lock_timeout_seconds), *body]


def drop_index(schema: str, name: str) -> str:
    return f"DROP INDEX CONCURRENTLY IF EXISTS {quote(schema)}.{quote(name)}"


def concurrently(definition: str) -> str:
    """``CREATE [UNIQUE] INDEX ...`` (as pg_get_indexdef or SQLAlchemy writes it) made concurrent."""
    made, replaced = _CREATE_INDEX.subn(
        lambda match: f"CREATE {match.group(1) or ''}INDEX CONCURRENTLY ", definition
    )
    if not replaced:
        raise ValueError(f"not a CREATE INDEX statement: {definition[:60]}")
    return " ".join(made.split())


def create_index(
    schema: str,
    table: str,
    name: str,
    columns: list[str],
    *,
    unique: bool = False,
    where: str | None = None,
    concurrently: bool = True,
) -> str:
    """``CREATE INDEX`` on *columns* in their order, partial when *where* is given (a predicate as
    PostgreSQL prints it). Concurrent unless asked otherwise (a hypothetical index, or a scratch copy)."""
    column_list = ", ".join(quote(column) for column in columns)
    kind = "UNIQUE INDEX" if unique else "INDEX"
    build = f"{kind} CONCURRENTLY" if concurrently else kind
    statement = f"CREATE {build} {quote(name)} ON {quote(schema)}.{quote(table)} ({column_list})"
    return f"{statement} WHERE {where}" if where else statement


def create_model_index(index: Index) -> str:
    """The concurrent build of an index the models declare, with its options (predicate, method)."""
    return concurrently(str(CreateIndex(index).compile(dialect=_DIALECT)))


def reindex(schema: str, name: str) -> str:
    return f"REINDEX INDEX CONCURRENTLY {quote(schema)}.{quote(name)}"
