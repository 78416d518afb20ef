"""What a multi-part backup dumps, read in its snapshot; its row counts; and the locks that make those
counts the dump's.

The plan is read inside the snapshot transaction, so it names exactly the tables every pg_dump sees: a
table created after the snapshot is in no plan and in no part. It holds what a single pg_dump would
dump the data of: ordinary, unlogged and partitioned tables (inheritance children and partitions are
tables of their own), the configuration tables and sequences that extensions mark with
``pg_extension_config_dump`` (pg_dump dumps their user rows), every other sequence, and the large
objects.

A single pg_dump holds ACCESS SHARE on every table it dumps until it ends; a part's pg_dump releases
its tables when that part ends, and any pg_dump may end before the rows are counted. The snapshot
holder therefore takes the same lock on every table it counts or plans before any pg_dump starts, and
keeps it until the last has ended and the rows are counted: a TRUNCATE or a rewriting ALTER (neither
is MVCC-safe) cannot commit under a part still dumping, nor before the count, so the counts are the
dump's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from models.backup_plan import (
    DataGroup,
    PlannedSequence,
    PlannedTable,
    default_parallelism,
    plan_groups,
)
from models.settings import Settings
from tasks.backup.source import TABLES_IN_SCHEMA
from tasks.postgres.engine import quote_identifier

_USER_SCHEMAS = """
    n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
"""
#: An extension's objects are created by CREATE EXTENSION, not dumped, except for the rows of the
#: tables and sequences it marked as configuration.
_DUMPED_WITH_DATA = """
    (NOT EXISTS (
        SELECT 1 FROM pg_depend e
        WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e'
    ) OR c.oid IN (SELECT unnest(x.extconfig) FROM pg_extension x))
"""
#: Sizes from the catalogue's page counts, not pg_table_size(): that one takes a lock on each table, so
#: a table held by a stuck migration would stop the plan, before the bounded lock wait could name the
#: holder. The counts are estimates (kept by VACUUM, ANALYZE and CREATE INDEX; 0 for a table never
#: analysed), which is all balancing the parts needs.
PLANNED_TABLES = text(f"""
    SELECT n.nspname, c.relname, c.oid,
           (greatest(c.relpages, 0) + coalesce(greatest(t.relpages, 0), 0))::bigint
           * current_setting('block_size')::bigint,
           c.relkind = 'p'
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
    WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' AND {_USER_SCHEMAS} AND {_DUMPED_WITH_DATA}
    ORDER BY 1, 2
""")
PLANNED_SEQUENCES = text(f"""
    SELECT n.nspname, c.relname,
           (SELECT d.refobjid FROM pg_depend d
            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
              AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1),
           c.oid IN (SELECT unnest(x.extconfig) FROM pg_extension x)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'S' AND c.relpersistence <> 't' AND {_USER_SCHEMAS} AND {_DUMPED_WITH_DATA}
    ORDER BY 1, 2
""")
HAS_LARGE_OBJECTS = text("SELECT EXISTS (SELECT 1 FROM pg_largeobject_metadata)")


@dataclass(frozen=True)
class BackupPlan:
    """What the snapshot holds, and how its tables' data is divided among the data parts."""

    tables: list[PlannedTable]
    sequences: list[PlannedSequence]
    large_objects: bool
    groups: list[DataGroup]
    current_schema: str
    #: The current schema's tables, as a restore counts them (:func:`tasks.backup.source.count_rows`).
    current_schema_tables: list[str]

    def counted_relations(self) -> dict[str, str]:
        """What the counts cover, by qualified name: every planned table, and every table of the
        current schema (the manifest's ``row_counts``), each as SQL names it."""
        relations = {table.qualified: table.pattern for table in self.tables}
        for name in self.current_schema_tables:
            relations.setdefault(
                f"{self.current_schema}.{name}",
                f"{quote_identifier(self.current_schema)}.{quote_identifier(name)}",
            )
        return relations

    def current_schema_counts(self, counted: dict[str, int]) -> dict[str, int]:
        """The manifest's ``row_counts``: the tables of the current schema, by their plain names, as a
        single-object backup records them and a restore counts them (partitioned parents included)."""
        return {name: counted[f"{self.current_schema}.{name}"] for name in self.current_schema_tables}


def read_plan(connection: Connection, settings: Settings) -> BackupPlan | None:
    """The plan, read in the snapshot on *connection*; None when the backup is to be one object
    (parallelism 1, or fewer than two tables with rows of their own)."""
    tables = [
        PlannedTable(str(schema), str(name), int(oid), int(size or 0), bool(partitioned))
        for schema, name, oid, size, partitioned in connection.execute(PLANNED_TABLES)
    ]
    with_rows = [table for table in tables if not table.partitioned]
    parallelism = settings.backup_parallelism or default_parallelism(os.cpu_count() or 1, with_rows)
    if parallelism < 2 or len(with_rows) < 2:
        return None
    sequences = [
        PlannedSequence(str(schema), str(name), int(owner) if owner is not None else None, bool(config))
        for schema, name, owner, config in connection.execute(PLANNED_SEQUENCES)
    ]
    large_objects = bool(connection.execute(HAS_LARGE_OBJECTS).scalar_one())
    current = str(connection.execute(text("SELECT current_schema()")).scalar_one())
    in_schema = [str(name) for name in connection.execute(TABLES_IN_SCHEMA).scalars()]
    groups = plan_groups(tables, sequences, min(parallelism, len(with_rows)), large_objects=large_objects)
    return BackupPlan(tables, sequences, large_objects, groups, current, in_schema)


def hold_tables(connection: Connection, relations: list[str]) -> None:
    """ACCESS SHARE on *relations* (as SQL names them), in the snapshot transaction on *connection*,
    until it ends: what pg_dump's leader holds for the whole dump. Waits at most the session's
    lock_timeout, and raises the driver's lock_not_available error past it."""
    if relations:
        connection.execute(text(f"LOCK TABLE {', '.join(relations)} IN ACCESS SHARE MODE"))


def current_schema_relations(connection: Connection) -> list[str]:
    """The current schema's tables, as SQL names them: what a single-object backup counts."""
    schema = str(connection.execute(text("SELECT current_schema()")).scalar_one())
    return [
        f"{quote_identifier(schema)}.{quote_identifier(str(name))}"
        for name in connection.execute(TABLES_IN_SCHEMA).scalars()
    ]


def count_tables(connection: Connection, relations: dict[str, str]) -> dict[str, int]:
    """The rows of each of *relations* (qualified name: SQL name), in one statement."""
    names = list(relations)
    union = " UNION ALL ".join(
        f"SELECT {index} AS position, count(*) FROM {relations[name]}" for index, name in enumerate(names)
    )
    counted = {int(row[0]): int(row[1]) for row in connection.execute(text(union))}
    return {name: counted[index] for index, name in enumerate(names)}
