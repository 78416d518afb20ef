"""Generic plans of the workload's statements: how the planner runs them whatever their parameters.

PostgreSQL 16 and later plan a statement with ``$n`` placeholders directly (``EXPLAIN (GENERIC_PLAN)``).
Before 16 the statement is prepared, ``plan_cache_mode = force_generic_plan`` makes its first execution
use the generic plan, and ``EXPLAIN EXECUTE`` gives it NULLs of the types the server inferred. Each
plan is made in a savepoint, so one statement that cannot be planned (a table since dropped, a
timeout) is rolled back alone and the rest of the transaction goes on. ``EXPLAIN`` without
``ANALYZE`` runs nothing, so this works in a read-only transaction, UPDATE and DELETE included.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from tasks.index_review.workload.needs import total_cost

_log = logging.getLogger(__name__)
GENERIC_PLAN_VERSION_NUM = 160_000
_OPTIONS = "VERBOSE, FORMAT JSON"
_names = itertools.count(1)

PARAMETER_TYPES = text("SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = :name")


def _run(connection: Connection, sql: str) -> list[tuple[Any, ...]]:
    """*sql* as it is, on the driver's cursor: statement text from the workload may hold ``%`` and
    ``:name`` that a parameter-binding layer would misread."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall()) if cursor.description else []
    except psycopg.Error as error:  # as SQLAlchemy would have raised it
        raise DBAPIError(sql, None, error) from None
    finally:
        cursor.close()


def plan_settings(connection: Connection, statement_timeout_seconds: float) -> None:
    """Bound every plan of this transaction by *statement_timeout_seconds*."""
    _run(connection, f"SET LOCAL statement_timeout = '{int(statement_timeout_seconds * 1000)}ms'")


def generic_plan(connection: Connection, query: str, version_num: int) -> Any:
    """The ``EXPLAIN (VERBOSE, FORMAT JSON)`` generic plan of *query* (``$n`` placeholders allowed).

    Raises :class:`sqlalchemy.exc.DBAPIError` when the statement cannot be planned; the transaction
    is left as it was (the savepoint is rolled back).
    """
    if version_num >= GENERIC_PLAN_VERSION_NUM:
        with connection.begin_nested():
            return _run(connection, f"EXPLAIN (GENERIC_PLAN, {_OPTIONS}) {query}")[0][0]
    name = f"dbops_advice_{next(_names)}"
    try:
        with connection.begin_nested():
            _run(connection, "SET LOCAL plan_cache_mode = force_generic_plan")
            _run(connection, f"PREPARE {name} AS {query}")
            types = connection.execute(PARAMETER_TYPES, {"name": name}).scalar_one() or []
            arguments = ", ".join(f"NULL::{parameter_type}" for parameter_type in types)
            execute = f"EXECUTE {name}({arguments})" if arguments else f"EXECUTE {name}"
            return _run(connection, f"EXPLAIN ({_OPTIONS}) {execute}")[0][0]
    finally:
        # After the savepoint, whatever happened in it: a prepared statement outlives a rollback.
        if connection.execute(PARAMETER_TYPES, {"name": name}).first() is not None:
            _run(connection, f"DEALLOCATE {name}")


def try_generic_plan(connection: Connection, key: str, query: str, version_num: int) -> Any | None:
    """:func:`generic_plan`, or None (with the reason logged) for a statement that cannot be planned:
    one such statement never fails the review."""
    try:
        return generic_plan(connection, query, version_num)
    except DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        _log.info("statement %s skipped: it cannot be planned (%s)", key, reason)
        return None


def plan_cost(connection: Connection, key: str, query: str, version_num: int) -> float | None:
    """The planner's total cost of *query*'s generic plan, or None when it cannot be planned."""
    plan = try_generic_plan(connection, key, query, version_num)
    return None if plan is None else total_cost(plan)
