"""Unlogged tables for a scratch copy: its rows and indexes go to disk without going through the WAL.

A rehearsal's copy is dropped once it has proven the backup restores, so nothing needs to survive a
crash of its server, and writing every row and index twice (once to the WAL, once to the table) is
pure cost: the raw ``pg_restore`` it is measured against writes both. After pre-data every table is
still empty, so ``ALTER TABLE ... SET UNLOGGED`` costs nothing then.

Left logged, whole: a copy with a partitioned table (its parent cannot be made unlogged before
PostgreSQL 18, and a foreign key from a logged table to an unlogged one is refused), or with a
publication in its post-data (an unlogged table cannot be published). Never for a copy that is
kept, takes a live database's place, or measures pending migrations (their WAL is part of the plan).
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.engine import URL

from models.settings import Settings
from tasks.postgres.engine import make_engine, open_connection, quote_identifier

_LOGGED_TABLES = text("""
    SELECT n.nspname, c.relname, c.relkind = 'p'
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
      AND NOT EXISTS (
          SELECT 1 FROM pg_depend e
          WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e'
      )
    ORDER BY 1, 2
""")


def unlog_tables(
    url: URL,
    settings: Settings,
    *,
    publishes: bool,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> int:
    """Make every table of the (just pre-data restored, empty) database at *url* unlogged; how many.
    None when it has a partitioned table or *publishes* (its post-data adds tables to a publication)."""
    engine = make_engine(url, settings, purpose="restore")
    try:
        with open_connection(engine, autocommit=True) as connection:
            tables = connection.execute(_LOGGED_TABLES).all()
            if publishes or any(partitioned for _, _, partitioned in tables):
                log.info("the tables stay logged: the copy has a partitioned table or a publication")
                return 0
            for schema, name, _ in tables:
                connection.exec_driver_sql(
                    f"ALTER TABLE {quote_identifier(schema)}.{quote_identifier(name)} SET UNLOGGED"
                )
    finally:
        engine.dispose()
    return len(tables)
