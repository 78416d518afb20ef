"""An application-like workload on the synthetic data, so ``pg_stat_statements`` has something to show.

The demo and the index-advice benchmark run it after loading synthetic volume: the statements a
platform's pages would run (an actor's recent activity, an entity's history, a user's recent events, a
university's event counts), each with values taken from the rows themselves, several hundred times.
None of them has an index that serves it in the shipped schema, which is what the index review's
workload advice is for.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy.engine import URL

from tasks.postgres import driver

_log = logging.getLogger(__name__)

#: (statement, the query that picks its parameter sets from the data).
STATEMENTS: tuple[tuple[str, str], ...] = (
    (
        "SELECT id, action, created_at FROM audit_logs WHERE actor_id = %s ORDER BY created_at DESC LIMIT 20",
        "SELECT DISTINCT actor_id FROM audit_logs WHERE actor_id IS NOT NULL LIMIT 200",
    ),
    (
        "SELECT id, action, actor_id, created_at FROM audit_logs WHERE entity_type = %s AND entity_id = %s "
        "ORDER BY created_at DESC LIMIT 50",
        "SELECT entity_type, entity_id FROM audit_logs WHERE entity_id IS NOT NULL LIMIT 200",
    ),
    (
        "SELECT event_type, occurred_at FROM analytics_events WHERE user_id = %s "
        "ORDER BY occurred_at DESC LIMIT 20",
        "SELECT DISTINCT user_id FROM analytics_events WHERE user_id IS NOT NULL LIMIT 200",
    ),
    (
        "SELECT count(*) FROM analytics_events WHERE university_id = %s AND event_type = %s "
        "AND occurred_at >= %s",
        "SELECT DISTINCT university_id, event_type FROM analytics_events WHERE university_id IS NOT NULL "
        "LIMIT 200",
    ),
)


def run_app_workload(url: URL, *, calls: int = 100) -> int:
    """Run each statement *calls* times with values from the data (recorded by pg_stat_statements
    where the server preloads it: the extension is created here when it can be); the calls made."""
    made = 0
    since = datetime.now(UTC) - timedelta(days=7)
    with driver.connect(url, purpose="application workload", autocommit=True) as connection:
        _enable_statistics(connection)
        for statement, picks in STATEMENTS:
            values = connection.execute(picks).fetchall()
            if not values:
                continue
            for call in range(calls):
                picked = values[call % len(values)]
                arguments = (*picked, since) if statement.count("%s") > len(picked) else picked
                connection.execute(statement, arguments).fetchall()
                made += 1
    return made


def _enable_statistics(connection: psycopg.Connection[tuple[object, ...]]) -> None:
    """``CREATE EXTENSION pg_stat_statements`` where the role may; the workload runs either way."""
    try:
        connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    except psycopg.Error as error:
        _log.info("pg_stat_statements not enabled: %s", str(error).strip().splitlines()[0])
