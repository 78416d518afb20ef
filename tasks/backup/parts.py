"""A backup in parts: pre-data, the tables' data in size-balanced groups, post-data, each its own pg_dump
from the one exported snapshot and its own stored object.

The plan is read inside the snapshot transaction, so it names exactly the tables every pg_dump sees: a
table created after the snapshot is in no plan and in no part. The data groups' pg_dump processes run
at once, each with a server backend of its own, each streamed through compression, encryption and
hashing into its object. Afterwards every part's table of contents proves the division exact
(:func:`models.backup_plan.coverage_problems`). A part that fails stops the others, and what was
stored is removed (or left to the incomplete-backup sweep), so nothing is listed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection

from models.backup import BackupPart, PartKind, part_key
from models.backup_plan import (
    DataGroup,
    PlannedSequence,
    PlannedTable,
    coverage_problems,
    default_parallelism,
    parse_listing,
    plan_groups,
)
from models.errors import BackupError, DbopsError
from models.settings import Settings

if TYPE_CHECKING:
    from tasks.backup.dump import DumpJob, StreamedDump
    from tasks.backup.progress import Progress

_log = logging.getLogger(__name__)

_SYSTEM_SCHEMAS = """
    n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
    AND NOT EXISTS (
        SELECT 1 FROM pg_depend e
        WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e'
    )
"""
#: Sizes from the catalogue's page counts, not pg_table_size(): that one takes a lock on each table, so
#: a table held by a stuck migration would stop the plan, before pg_dump's own bounded lock wait
#: could name the holder. The counts are estimates (kept by VACUUM, ANALYZE and CREATE INDEX), which
#: is all balancing the parts needs.
PLANNED_TABLES = text(f"""
    SELECT n.nspname, c.relname, c.oid,
           (greatest(c.relpages, 0) + coalesce(greatest(t.relpages, 0), 0))::bigint
           * current_setting('block_size')::bigint
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
    WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND {_SYSTEM_SCHEMAS}
    ORDER BY 1, 2
""")
PLANNED_SEQUENCES = text(f"""
    SELECT n.nspname, c.relname,
           (SELECT d.refobjid FROM pg_depend d
            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
              AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'S' AND c.relpersistence <> 't' AND {_SYSTEM_SCHEMAS}
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

    def current_schema_counts(self, counted: dict[str, int]) -> dict[str, int]:
        """The manifest's ``row_counts``: the tables of the current schema, by their plain names, as a
        single-object backup records them."""
        return {
            table.name: counted[table.qualified]
            for table in self.tables
            if table.schema == self.current_schema
        }


def read_plan(connection: Connection, settings: Settings) -> BackupPlan | None:
    """The plan, read in the snapshot on *connection*; None when the backup is to be one object
    (parallelism 1, or fewer than two tables)."""
    tables = [
        PlannedTable(str(schema), str(name), int(oid), int(size or 0))
        for schema, name, oid, size in connection.execute(PLANNED_TABLES)
    ]
    parallelism = settings.backup_parallelism or default_parallelism(os.cpu_count() or 1, tables)
    if parallelism < 2 or len(tables) < 2:
        return None
    sequences = [
        PlannedSequence(str(schema), str(name), int(owner) if owner is not None else None)
        for schema, name, owner in connection.execute(PLANNED_SEQUENCES)
    ]
    large_objects = bool(connection.execute(HAS_LARGE_OBJECTS).scalar_one())
    current = str(connection.execute(text("SELECT current_schema()")).scalar_one())
    groups = plan_groups(tables, sequences, parallelism, large_objects=large_objects)
    return BackupPlan(tables, sequences, large_objects, groups, current)


def count_tables(connection: Connection, tables: list[PlannedTable]) -> dict[str, int]:
    """Every planned table's rows, by qualified name, in one statement."""
    union = " UNION ALL ".join(
        f"SELECT {index} AS position, count(*) FROM {table.pattern}" for index, table in enumerate(tables)
    )
    counted = {int(row[0]): int(row[1]) for row in connection.execute(text(union))}
    return {table.qualified: counted[index] for index, table in enumerate(tables)}


def with_row_counts(parts: list[BackupPart], counted: dict[str, int]) -> list[BackupPart]:
    return [
        part.model_copy(update={"row_counts": {table: counted[table] for table in part.tables}})
        for part in parts
    ]


#: :func:`tasks.backup.dump.stream_dump`, passed in: that module imports this one.
StreamDump = Callable[..., "StreamedDump"]


@dataclass(frozen=True)
class _PartSpec:
    name: str
    kind: PartKind
    key: str
    selection: list[str]
    group: DataGroup | None = None


def _specs(plan: BackupPlan, backup_id: str, settings: Settings) -> list[_PartSpec]:
    compression, encrypted = settings.backup_compression, bool(settings.backup_age_recipients)
    names = ["pre-data", *(f"data-{index}" for index in range(1, len(plan.groups) + 1)), "post-data"]
    keys = [part_key(backup_id, index, name, compression, encrypted) for index, name in enumerate(names, 1)]
    # -B: the large objects' metadata goes with their data, in the one data part that takes them
    # (pg_restore before 17 counts a BLOB entry as data, so pre-data and that part would both create it).
    specs = [_PartSpec("pre-data", PartKind.PRE_DATA, keys[0], ["--section=pre-data", "-B"])]
    for index, group in enumerate(plan.groups, 1):
        selection = ["--data-only", "--strict-names", *(["-b"] if group.large_objects else [])]
        for pattern in group.patterns():
            selection += ["-t", pattern]
        specs.append(_PartSpec(f"data-{index}", PartKind.DATA, keys[index], selection, group))
    specs.append(_PartSpec("post-data", PartKind.POST_DATA, keys[-1], ["--section=post-data"]))
    return specs


def dump_parts(
    job: DumpJob,
    plan: BackupPlan,
    backup_id: str,
    progress: Progress,
    report: Callable[[Progress], None],
    stream: StreamDump,
) -> list[BackupPart]:
    """Dump every part at once, one pg_dump each, and prove the division exact; raises, with what was
    stored removed, if any part fails."""
    specs = _specs(plan, backup_id, job.settings)
    stop = threading.Event()

    def keep_going() -> None:
        if stop.is_set():
            raise BackupError("stopped because another part of the backup failed")

    def run(spec: _PartSpec) -> StreamedDump:
        try:
            return stream(
                job,
                spec.key,
                spec.selection,
                spec.name,
                progress,
                report,
                expected_size=max(spec.group.bytes, 1) if spec.group else 1,
                require_data=spec.kind is PartKind.DATA,
                keep_going=keep_going,
            )
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=len(specs), thread_name_prefix="backup-part") as pool:
        futures = [pool.submit(run, spec) for spec in specs]
        wait(futures)
    failures = [future.exception() for future in futures if future.exception() is not None]
    if failures:
        _remove_stored(job, specs)
        first = next((error for error in failures if not _is_stop(error)), failures[0])
        raise first  # type: ignore[misc]
    streamed = [future.result() for future in futures]
    listings = {spec.name: parse_listing(done.listing) for spec, done in zip(specs, streamed, strict=True)}
    problems = coverage_problems(plan.tables, plan.sequences, plan.large_objects, listings)
    if problems:
        _remove_stored(job, specs)
        raise BackupError(
            "the backup's parts do not hold every table's data exactly once; nothing was kept",
            detail="; ".join(problems[:5]),
            hint="report this; meanwhile DBOPS_BACKUP_PARALLELISM=1 writes a single-object backup",
        )
    return [_described(spec, done) for spec, done in zip(specs, streamed, strict=True)]


def _described(spec: _PartSpec, done: StreamedDump) -> BackupPart:
    group = spec.group or DataGroup()
    return BackupPart(
        name=spec.name,
        kind=spec.kind,
        object_key=spec.key,
        stored_bytes=done.stored.bytes,
        dump_bytes=done.dump_bytes,
        sha256=done.stored.sha256.hexdigest(),
        tables=[table.qualified for table in group.tables],
        sequences=[sequence.qualified for sequence in group.sequences],
        large_objects=group.large_objects,
    )


def _is_stop(error: BaseException | None) -> bool:
    return isinstance(error, BackupError) and error.message.startswith("stopped because")


def _remove_stored(job: DumpJob, specs: list[_PartSpec]) -> None:
    """Best effort: the parts a failed backup stored go now; what cannot (a store error, a lock) is left
    to the sweep of incomplete backups, which never lists them meanwhile."""
    stored = {found.key for found in job.store.list_objects(specs[0].key.rsplit("/", 1)[0])}
    with contextlib.suppress(DbopsError):
        job.store.delete([spec.key for spec in specs if spec.key in stored])
