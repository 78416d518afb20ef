"""Physical corruption: amcheck's ``bt_index_check`` on every valid btree index.

amcheck ships with PostgreSQL (contrib) but creating it needs privileges; where it cannot be created
the check is skipped with a warning that says how to enable it, never failed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from models.integrity import MAX_SAMPLES, Severity
from tasks.integrity.context import CheckContext
from tasks.integrity.outcome import Outcome, outcome_from, skipped

# Largest first, so the long checks start early.
BTREE_INDEXES = text("""
    SELECT i.relname
    FROM pg_index AS x
    JOIN pg_class AS i ON i.oid = x.indexrelid
    JOIN pg_am AS m ON m.oid = i.relam
    JOIN pg_class AS t ON t.oid = x.indrelid
    WHERE m.amname = 'btree' AND x.indisvalid AND x.indisready
      AND t.relnamespace = current_schema()::regnamespace
    ORDER BY pg_relation_size(i.oid) DESC
""")


def amcheck(context: CheckContext) -> Outcome:
    try:
        with context.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"))
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS amcheck"))
    except DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        return skipped(
            f"amcheck is not available ({reason}); a superuser can run CREATE EXTENSION amcheck "
            "(package postgresql-contrib) to enable this check",
            severity=Severity.WARNING,
        )
    with context.engine.connect() as connection:
        names = connection.execute(BTREE_INDEXES).scalars().all()
    problems: list[str] = []
    samples: list[dict[str, Any]] = []
    for name in names:
        try:
            with context.engine.connect() as connection:
                connection.execute(text("SELECT bt_index_check(CAST(:name AS regclass))"), {"name": name})
        except DBAPIError as error:
            message = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
            problems.append(f"index {name}: {message}")
            if len(samples) < MAX_SAMPLES:
                samples.append({"index": name, "error": message})
    return outcome_from(problems, f"{len(names)} btree indexes pass bt_index_check", samples)
