"""Bring a backup into an empty database, whether it is one object or several parts.

A single-object backup is unpacked into a file first, since ``pg_restore --jobs`` cannot read a pipe,
and then restored from it, as it always was. A multi-part backup needs room only for its schema: the
pre-data and post-data parts are fetched into files (checked before any database is touched), the
pre-data is restored, and then every data part streams from the store through sha256, decryption and
decompression straight into a ``pg_restore`` of its own, several at once. A part that has ended and
matched its manifest while another still streams builds its own tables' indexes and keys at once
(:mod:`tasks.restore.post_data`), as ``pg_restore --jobs`` does with one dump. Only once every data
part has ended and matched its manifest does the rest of post-data (foreign keys above all) run,
with ``--jobs``. A data part that fails its check fails the restore before then; the caller drops
the half-filled database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from models.backup import BackupManifest, BackupPart, PartKind, stored_parts
from models.errors import BackupCorruptError, CommandError, RestoreError
from models.rehearsal import PhaseTimings
from models.settings import Settings
from tasks.backup.streams import CHUNK, Hashing
from tasks.postgres.binaries import Program
from tasks.postgres.command import PgProcess
from tasks.postgres.libpq import child_environment
from tasks.restore.fetch import (
    FetchedDump,
    check_decryptable,
    ensure_room,
    fetch_part,
    unpacked,
    verify_stored,
    verify_unpacked,
)
from tasks.restore.pg_restore import restore_arguments, restore_dump
from tasks.restore.post_data import PostData, read_post_data, use_list
from tasks.restore.unlogged import unlog_tables
from tasks.storage import ObjectStore

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


@dataclass
class FetchedBackup:
    """A backup made ready to restore: what was fetched into files, and what streams at restore time."""

    store: ObjectStore
    manifest: BackupManifest
    identities: list[object]
    files: dict[str, FetchedDump]
    seconds: float

    @property
    def dump_bytes(self) -> int:
        return self.manifest.dump_bytes

    @property
    def streamed(self) -> list[BackupPart]:
        return [part for part in stored_parts(self.manifest) if part.kind is PartKind.DATA]

    def verify(self, settings: Settings) -> None:
        """Read every streamed part through its checks without restoring it: for a restore that must
        know the backup is sound before it destroys anything (in place)."""
        _each(self.streamed, settings, lambda part: self._check(part, None, None, settings, False, None))

    def restore(
        self,
        url: URL,
        pg_restore: Program,
        settings: Settings,
        *,
        keep_ownership: bool,
        log: Logger,
        timings: PhaseTimings | None = None,
        beside_post_data: Callable[[], object] | None = None,
        unlogged: bool = False,
    ) -> float:
        """Restore into the empty database at *url*; seconds taken, each section's also in *timings*.

        *beside_post_data* (a check that needs the rows and no index) runs in a thread of its own
        while post-data builds the indexes; what it raises is raised after post-data ended, unless
        post-data failed first. With *unlogged* (a scratch copy, see :mod:`tasks.restore.unlogged`), a
        multi-part backup's tables are made unlogged before their rows stream in.
        """
        timings = timings if timings is not None else PhaseTimings()
        started = time.monotonic()

        def from_file(name: str, jobs: int, entries: Path | None = None) -> float:
            return restore_dump(
                self.files[name].path,
                url,
                pg_restore,
                jobs=jobs,
                keep_ownership=keep_ownership,
                timeout_seconds=settings.command_timeout_seconds,
                logger=log,
                entries=entries,
            )

        if "dump" in self.files:
            timings.data = from_file("dump", settings.restore_jobs)
            timings.restore = round(time.monotonic() - started, 3)
            if beside_post_data is not None:
                beside_post_data()
        else:
            timings.pre_data = from_file("pre-data", 1)
            post_data = read_post_data(
                pg_restore, self.files["post-data"].path, settings.command_timeout_seconds
            )
            if unlogged:
                made = unlog_tables(url, settings, publishes=post_data.publishes, log=log)
                if made:
                    log.info("made %d table(s) of the scratch copy unlogged", made)
            phase = time.monotonic()
            self._stream_data(post_data, from_file, url, pg_restore, settings, keep_ownership, log, timings)
            timings.data = round(time.monotonic() - phase, 3)
            rest = use_list(post_data.rest(), self._list_file("post-data"))
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="beside-post-data") as beside:
                running = beside.submit(beside_post_data) if beside_post_data is not None else None
                timings.post_data = from_file("post-data", settings.restore_jobs, rest)
                # The restore ends here; what still runs beside it is the checks' time.
                timings.restore = round(time.monotonic() - started, 3)
                if running is not None:
                    running.result()
        log.info(
            "restored backup %s in %.1f s: pre-data %.1f s, data %.1f s, post-data %.1f s",
            self.manifest.backup_id,
            timings.restore,
            timings.pre_data,
            timings.data,
            timings.post_data,
        )
        return timings.restore

    def _stream_data(
        self,
        post_data: PostData,
        from_file: Callable[[str, int, Path], float],
        url: URL,
        pg_restore: Program,
        settings: Settings,
        keep_ownership: bool,
        log: Logger,
        timings: PhaseTimings,
    ) -> None:
        """Stream every data part; one that ends while another still streams builds its own tables'
        indexes and keys at once, on the cores the others leave, as ``pg_restore --jobs`` does."""
        streaming = [len(self.streamed)]
        guard = threading.Lock()

        def load(part: BackupPart) -> None:
            self._check(part, url, pg_restore, settings, keep_ownership, log)
            with guard:
                streaming[0] -= 1
                others = streaming[0]
            entries = post_data.take(part.tables) if others else []
            if not entries:
                return
            seconds = from_file("post-data", 1, use_list(entries, self._list_file(part.name)))
            log.info(
                "built %d index(es) and key(s) of %s's tables while %d other part(s) streamed, in %.1f s",
                len(entries),
                part.name,
                others,
                seconds,
            )
            with guard:
                timings.early_indexes = round(timings.early_indexes + seconds, 3)

        _each(self.streamed, settings, load)

    def _list_file(self, name: str) -> Path:
        return self.files["post-data"].path.with_name(f"{name}.list")

    def _check(
        self,
        part: BackupPart,
        url: URL | None,
        pg_restore: Program | None,
        settings: Settings,
        keep_ownership: bool,
        log: Logger | None,
    ) -> None:
        """Stream *part* into a pg_restore of its own (or, without *url*, nowhere), then check it."""
        stored = Hashing(self.store.open_read(part.object_key))
        failure: Exception | None = None
        unpacked_bytes = 0
        with contextlib.ExitStack() as stack:
            sink = None
            if url is not None and pg_restore is not None:
                environment = stack.enter_context(child_environment(url))
                arguments = restore_arguments(url, jobs=None, keep_ownership=keep_ownership)
                running = stack.enter_context(
                    PgProcess(
                        pg_restore.path,
                        arguments,
                        environment=environment,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.DEVNULL,
                        timeout_seconds=settings.command_timeout_seconds,
                        logger=log,
                    )
                )
                sink = running.stdin
            try:
                source = unpacked(stored.buffered(), self.manifest, self.identities)
                while chunk := source.read(CHUNK):
                    unpacked_bytes += len(chunk)
                    if sink is not None:
                        sink.write(chunk)
                if sink is not None:
                    sink.close()
                    running.finish()
            except BrokenPipeError:
                failure = _finish_quietly(running)
            except (CommandError, OSError, ValueError, RuntimeError) as error:
                failure = error
            except Exception as error:  # a decompression or decryption error: judged below
                failure = error
        stored.drain()
        verify_stored(stored, self.manifest.backup_id, part, self.store)
        if isinstance(failure, CommandError):
            raise RestoreError(
                f"pg_restore of part {part.name} of backup {self.manifest.backup_id} failed",
                detail=failure.detail,
                hint="the part matches its manifest; see the pg_restore messages above",
            )
        verify_unpacked(self.manifest.backup_id, part, failure, unpacked_bytes)


def _finish_quietly(running: PgProcess) -> Exception:
    """pg_restore stopped reading: its own failure says why."""
    try:
        running.finish()
    except CommandError as error:
        return error
    return RestoreError("pg_restore stopped reading its input")


def _each(parts: list[BackupPart], settings: Settings, check: Callable[[BackupPart], None]) -> None:
    """Run *check* on every part, several at once; once all have ended, raise the failure that matters
    most: a part that does not match its manifest, before any other."""
    workers = max(1, min(len(parts), settings.restore_parallelism or os.cpu_count() or 1))
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="restore-part") as pool:
        for future in [pool.submit(check, part) for part in parts]:
            error = future.exception()
            if error is not None:
                errors.append(error)
    if errors:
        corrupt = [error for error in errors if isinstance(error, BackupCorruptError)]
        raise (corrupt or errors)[0]


def fetch_backup(
    store: ObjectStore,
    manifest: BackupManifest,
    settings: Settings,
    directory: Path,
    *,
    logger: Logger | None = None,
) -> FetchedBackup:
    """Fetch what a restore of *manifest* needs as files: the whole dump of a single-object backup, or
    the pre-data and post-data parts of a multi-part one. Each is checked against the manifest here,
    before any database is touched; a disk without room for them fails first, saying how much."""
    started = time.monotonic()
    identities = check_decryptable(manifest, settings)
    local = [part for part in stored_parts(manifest) if part.kind is not PartKind.DATA]
    ensure_room(directory, sum(part.dump_bytes for part in local), manifest.backup_id)
    files = {
        part.name: fetch_part(store, manifest, part, identities, directory, logger=logger) for part in local
    }
    return FetchedBackup(store, manifest, identities, files, round(time.monotonic() - started, 3))
