"""Physical corruption: amcheck's ``bt_index_check`` on every valid btree index.

amcheck ships with PostgreSQL (contrib) but creating it needs privileges; where it cannot be created
the check is skipped with a warning that says how to enable it, never failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from models.integrity import MAX_SAMPLES, Severity
from tasks.integrity.context import CheckContext
from tasks.integrity.outcome import Outcome, outcome_from, skipped
from tasks.integrity.schedule import Read

# Largest first, so the long checks start early.
BTREE_INDEXES = text("""
    SELECT i.relname, pg_relation_size(i.oid)
    FROM pg_index AS x
    JOIN pg_class AS i ON i.oid = x.indexrelid
    JOIN pg_am AS m ON m.oid = i.relam
    JOIN pg_class AS t ON t.oid = x.indrelid
    WHERE m.amname = 'btree' AND x.indisvalid AND x.indisready
      AND t.relnamespace = current_schema()::regnamespace
    ORDER BY pg_relation_size(i.oid) DESC
""")
MAY_RUN_BT_INDEX_CHECK = text("""
    SELECT has_function_privilege(f, 'EXECUTE') FROM to_regprocedure('bt_index_check(regclass)') AS f
""")


def amcheck_unavailable(context: CheckContext) -> str | None:
    """Create amcheck if needed (once per run); the reason it cannot be used, or None."""
    return context.once("amcheck-extension", lambda: _create_extension(context))


def _create_extension(context: CheckContext) -> str | None:
    try:
        with context.connection() as connection:
            # The session is read-only by default; this one transaction may write, and it commits.
            connection.execute(text("SET TRANSACTION READ WRITE"))
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS amcheck"))
            connection.commit()
    except DBAPIError as error:
        return str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
    with context.connection() as connection:
        allowed = connection.execute(MAY_RUN_BT_INDEX_CHECK).scalar()
    if not allowed:
        # amcheck revokes its functions from PUBLIC: without the grant every index would "fail".
        return (
            "this role may not run bt_index_check; GRANT EXECUTE ON FUNCTION bt_index_check(regclass) TO it"
        )
    return None


def btree_indexes(context: CheckContext) -> dict[str, int]:
    """Every valid btree index of the schema with its size in bytes, largest first."""

    def read() -> dict[str, int]:
        with context.connection() as connection:
            return {str(name): int(size) for name, size in connection.execute(BTREE_INDEXES)}

    return context.once("btree-indexes", read)


def index_error(context: CheckContext, name: str) -> str | None:
    """``bt_index_check`` of one index, once per run: the error it reports, or None."""

    def check() -> str | None:
        try:
            with context.connection() as connection:
                connection.execute(text("SELECT bt_index_check(CAST(:name AS regclass))"), {"name": name})
        except DBAPIError as error:
            return str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        return None

    return context.once(("amcheck", name), check)


def amcheck(context: CheckContext) -> Outcome:
    reason = amcheck_unavailable(context)
    if reason is not None:
        return skipped(
            f"amcheck is not available ({reason}); a superuser can run CREATE EXTENSION amcheck "
            "(package postgresql-contrib) and grant EXECUTE on bt_index_check to enable this check",
            severity=Severity.WARNING,
        )
    names = btree_indexes(context)
    errors = {name: error for name in names if (error := index_error(context, name)) is not None}
    return outcome_from(
        [f"index {name}: {error}" for name, error in errors.items()],
        f"{len(names)} btree indexes pass bt_index_check",
        [{"index": name, "error": error} for name, error in list(errors.items())[:MAX_SAMPLES]],
    )


def amcheck_reads(context: CheckContext, sizes: Mapping[str, int]) -> list[Read]:
    """amcheck's reads: one ``bt_index_check`` per index, none where amcheck cannot run."""
    if amcheck_unavailable(context) is not None:
        return []
    return [
        Read("amcheck", size, partial(index_error, context, name))
        for name, size in btree_indexes(context).items()
    ]
