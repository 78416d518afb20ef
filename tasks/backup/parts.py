"""A backup in parts: pre-data, the tables' data in size-balanced groups, post-data, each its own pg_dump
from the one exported snapshot and its own stored object.

The plan (:mod:`tasks.backup.plan`) is read in the snapshot. The data groups' pg_dump processes run at
once, each with a server backend of its own, each streamed through compression, encryption and
hashing into its object. Beside them, a pg_dump of the whole snapshot lists what a single pg_dump
would have dumped, and the parts' tables of contents must hold exactly that
(:mod:`tasks.backup.coverage`). A part that fails stops the others, and what was stored is removed (or
left to the incomplete-backup sweep), so nothing is listed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from models.backup import BackupPart, PartKind, part_key
from models.backup_plan import DataGroup
from models.errors import BackupError, DbopsError
from models.settings import Settings
from tasks.backup.coverage import pg_dump_selection, prove_coverage
from tasks.backup.pg_dump import DumpJob, StreamedDump, stream_dump
from tasks.backup.plan import BackupPlan
from tasks.backup.progress import Progress


@dataclass(frozen=True)
class PartSpec:
    name: str
    kind: PartKind
    key: str
    selection: list[str]
    group: DataGroup | None = None


def part_specs(plan: BackupPlan, backup_id: str, settings: Settings) -> list[PartSpec]:
    compression, encrypted = settings.backup_compression, bool(settings.backup_age_recipients)
    names = ["pre-data", *(f"data-{index}" for index in range(1, len(plan.groups) + 1)), "post-data"]
    keys = [part_key(backup_id, index, name, compression, encrypted) for index, name in enumerate(names, 1)]
    # -B: the large objects' metadata goes with their data, in the one data part that takes them
    # (pg_restore before 17 counts a BLOB entry as data, so pre-data and that part would both create it).
    specs = [PartSpec("pre-data", PartKind.PRE_DATA, keys[0], ["--section=pre-data", "-B"])]
    for index, group in enumerate(plan.groups, 1):
        patterns = group.patterns()
        if not group.row_tables:
            # A --data-only pg_dump without -t dumps every table: never run one.
            raise BackupError(
                f"the backup's plan has a data part (data-{index}) without tables; nothing was kept"
            )
        selection = ["--data-only", "--strict-names", *(["-b"] if group.large_objects else [])]
        for pattern in patterns:
            selection += ["-t", pattern]
        specs.append(PartSpec(f"data-{index}", PartKind.DATA, keys[index], selection, group))
    specs.append(PartSpec("post-data", PartKind.POST_DATA, keys[-1], ["--section=post-data"]))
    return specs


def dump_parts(
    job: DumpJob,
    plan: BackupPlan,
    backup_id: str,
    progress: Progress,
    report: Callable[[Progress], None],
) -> list[BackupPart]:
    """Dump every part at once, one pg_dump each, and prove that together they hold what a single
    pg_dump would; raises, with what was stored removed, if any part fails or the proof does."""
    specs = part_specs(plan, backup_id, job.settings)
    stop = threading.Event()

    def keep_going() -> None:
        if stop.is_set():
            raise BackupError("stopped because another part of the backup failed")

    def run(spec: PartSpec) -> StreamedDump:
        try:
            return stream_dump(
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

    def selection() -> list[str]:
        try:
            return pg_dump_selection(job)
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=len(specs) + 1, thread_name_prefix="backup-part") as pool:
        futures = [pool.submit(run, spec) for spec in specs]
        selected = pool.submit(selection)
        everything: list[Future[Any]] = [*futures, selected]
        wait(everything)
    failures = [future.exception() for future in everything if future.exception() is not None]
    if failures:
        _remove_stored(job, specs)
        first = next((error for error in failures if not _is_stop(error)), failures[0])
        raise first  # type: ignore[misc]
    streamed = [future.result() for future in futures]
    try:
        prove_coverage(
            selected.result(), {spec.name: done.listing for spec, done in zip(specs, streamed, strict=True)}
        )
    except BackupError:
        _remove_stored(job, specs)
        raise
    return [_described(spec, done) for spec, done in zip(specs, streamed, strict=True)]


def with_row_counts(parts: list[BackupPart], counted: dict[str, int]) -> list[BackupPart]:
    return [
        part.model_copy(update={"row_counts": {table: counted[table] for table in part.tables}})
        for part in parts
    ]


def _described(spec: PartSpec, done: StreamedDump) -> BackupPart:
    group = spec.group or DataGroup()
    return BackupPart(
        name=spec.name,
        kind=spec.kind,
        object_key=spec.key,
        stored_bytes=done.stored.bytes,
        dump_bytes=done.dump_bytes,
        sha256=done.stored.sha256.hexdigest(),
        tables=[table.qualified for table in group.row_tables],
        sequences=[sequence.qualified for sequence in group.sequences],
        large_objects=group.large_objects,
    )


def _is_stop(error: BaseException | None) -> bool:
    return isinstance(error, BackupError) and error.message.startswith("stopped because")


def _remove_stored(job: DumpJob, specs: list[PartSpec]) -> None:
    """Best effort: the parts a failed backup stored go now; what cannot (a store error, a lock) is left
    to the sweep of incomplete backups, which never lists them meanwhile."""
    stored = {found.key for found in job.store.list_objects(specs[0].key.rsplit("/", 1)[0])}
    with contextlib.suppress(DbopsError):
        job.store.delete([spec.key for spec in specs if spec.key in stored])
