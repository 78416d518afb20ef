"""The restore rehearsal: prove a backup restores, by restoring it.

Fetch the archive (sha256 checked before any database is touched), restore it into a scratch
database with parallel pg_restore, compare every table's rows with the manifest, migrate it to the
code's head and run the integrity checks on it. Every outcome is recorded beside the backup, and the
scratch database is dropped in every outcome unless asked to keep it.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from alembic.script.revision import ResolutionError
from alembic.util.exc import CommandError as AlembicCommandError
from sqlalchemy.engine import URL

from models.backup import BackupManifest, is_backup_id, rehearsal_key
from models.database_url import describe
from models.errors import DbopsError, RestoreError, RestoreRefusedError
from models.integrity import IntegrityReport
from models.rehearsal import CountMismatch, RehearsalRecord
from models.settings import Settings
from tasks.backup import count_rows
from tasks.backup_catalog import list_backups, read_manifest
from tasks.database import make_engine, open_connection
from tasks.fetch_archive import check_decryptable, fetch_archive
from tasks.integrity.runner import validate_integrity
from tasks.migrate import head_revision, migrate, script_directory
from tasks.pg_binaries import pg_restore_for
from tasks.pg_restore import restore_archive
from tasks.restore_target import (
    CreatedDatabase,
    create_database,
    database_size,
    drop_created,
    rehearsal_server,
    timestamped_name,
)
from tasks.seed import load_seed_document, seed_file_path
from tasks.storage import ObjectStore

_log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
#: Runs the integrity checks on a restored database; the flow passes one that publishes artifacts.
Validator = Callable[[URL], IntegrityReport]


def choose_backup(store: ObjectStore, backup_id: str | None) -> BackupManifest:
    """The backup named (a complete one), or the newest complete one for None or ``latest``."""
    if backup_id in (None, "latest"):
        complete = list_backups(store)
        if not complete:
            raise RestoreRefusedError(
                f"there is no complete backup in {store.describe()}", hint="take one with dbops backup"
            )
        return complete[0]
    assert backup_id is not None
    if not is_backup_id(backup_id):
        raise RestoreRefusedError(
            f"{backup_id!r} is not a backup id",
            hint="dbops backups lists them (e.g. 20261127T020000Z-3fa9c1)",
        )
    if backup_id not in {manifest.backup_id for manifest in list_backups(store)}:
        raise RestoreRefusedError(
            f"backup {backup_id} has no manifest in {store.describe()}: it is incomplete or does not exist",
            hint="dbops backups lists the complete backups",
        )
    return read_manifest(store, backup_id)


def check_migratable(manifest: BackupManifest) -> None:
    """Refuse a backup taken by newer code: this code cannot migrate a revision it does not know."""
    if manifest.alembic_revision is None:
        return
    try:
        script_directory().get_revision(manifest.alembic_revision)
    except (AlembicCommandError, ResolutionError):
        raise RestoreRefusedError(
            f"backup {manifest.backup_id} is at revision {manifest.alembic_revision}, which this code "
            f"does not know (its head is {head_revision()})",
            detail="the backup was taken by newer code, so this code cannot migrate it",
            hint="use the code version that took it, or an older backup",
        ) from None


def count_mismatches(expected: dict[str, int], restored: dict[str, int]) -> list[CountMismatch]:
    """Tables whose rows differ between the manifest and the restored copy (missing ones included)."""
    return [
        CountMismatch(table=table, manifest=expected.get(table), restored=restored.get(table))
        for table in sorted(expected.keys() | restored.keys())
        if expected.get(table) != restored.get(table)
    ]


def rehearse(
    settings: Settings,
    store: ObjectStore,
    *,
    backup_id: str | None = None,
    keep: bool = False,
    validate: Validator | None = None,
    logger: Logger | None = None,
) -> RehearsalRecord:
    """Rehearse the restore of one backup and record the outcome beside it.

    Refusals (no such backup, a revision this code does not know, no key to decrypt it) raise before
    anything is touched and record nothing. Every other outcome, passed or failed, is recorded and
    returned; :func:`raise_for_failure` turns a failed one into an error.
    """
    log = logger or _log
    manifest = choose_backup(store, backup_id)
    check_migratable(manifest)
    check_decryptable(manifest, settings)
    server = rehearsal_server(settings)
    pg_restore = pg_restore_for(manifest.pg_dump_version, settings.pg_bindir)
    record = RehearsalRecord(
        backup_id=manifest.backup_id,
        rehearsed_at=datetime.now(UTC),
        passed=False,
        server=f"{server.host}:{server.port}",
        backup_revision=manifest.alembic_revision,
        pg_restore_version=pg_restore.number,
        jobs=settings.restore_jobs,
        stored_bytes=manifest.stored_bytes,
    )
    timings = record.timings
    started = time.monotonic()
    created: CreatedDatabase | None = None
    try:
        with _work_directory(settings) as directory:
            fetched = fetch_archive(store, manifest, settings, directory, logger=log)
            timings.download, record.archive_bytes = fetched.seconds, fetched.archive_bytes
            created = create_database(server, settings, timestamped_name("rehearsal"))
            record.scratch_database = created.name
            timings.restore = restore_archive(
                fetched.path,
                created.url,
                pg_restore,
                jobs=settings.restore_jobs,
                keep_ownership=False,
                logger=log,
            )
        record.count_mismatches = count_mismatches(manifest.row_counts, _count(created.url, settings))
        record.restored_database_bytes = database_size(created.url, settings)
        phase = time.monotonic()
        record.migrated_to = migrate(created.url, settings, logger=log).revision_after
        timings.migrate = round(time.monotonic() - phase, 3)
        phase = time.monotonic()
        report = (validate or _default_validator(settings, log))(created.url)
        timings.validation = round(time.monotonic() - phase, 3)
        record.validation_errors = [f"{check.name}: {check.detail}" for check in report.errors]
        record.failure = _verdict(record)
        record.passed = record.failure is None
    except DbopsError as error:
        record.failure = error.one_line()
    finally:
        timings.total = round(time.monotonic() - started, 3)
        if created is not None:
            if keep:
                record.scratch_kept = True
                log.warning("kept the scratch database %s on %s", created.name, describe(server))
            else:
                drop_created(created, settings, logger=log)
        store.put_bytes(rehearsal_key(manifest.backup_id), record.model_dump_json(indent=2).encode())
    log.info(
        "rehearsal of backup %s %s in %.1f s",
        manifest.backup_id,
        "passed" if record.passed else "FAILED",
        timings.total,
    )
    return record


def raise_for_failure(record: RehearsalRecord) -> None:
    if not record.passed:
        raise RestoreError(
            f"the rehearsal of backup {record.backup_id} failed",
            detail=record.failure,
            hint="this backup is not proven restorable; see the rehearsal record beside it",
        )


def _verdict(record: RehearsalRecord) -> str | None:
    if record.count_mismatches:
        listed = ", ".join(
            f"{m.table} {m.manifest} in the manifest, {m.restored} restored" for m in record.count_mismatches
        )
        return f"row counts differ from the manifest in {len(record.count_mismatches)} table(s): {listed}"
    if record.validation_errors:
        failed = "; ".join(record.validation_errors)
        return f"{len(record.validation_errors)} integrity check(s) failed: {failed}"
    return None


def _count(url: URL, settings: Settings) -> dict[str, int]:
    engine = make_engine(url, settings, purpose="rehearsal")
    try:
        with open_connection(engine) as connection:
            return count_rows(connection)
    finally:
        engine.dispose()


def _default_validator(settings: Settings, log: Logger) -> Validator:
    seed_document = load_seed_document(seed_file_path(settings))
    return lambda url: validate_integrity(url, settings, seed_document=seed_document, logger=log)


@contextmanager
def _work_directory(settings: Settings) -> Iterator[Path]:
    """A private directory for the unpacked archive, removed with everything in it afterwards."""
    parent = settings.effective_restore_work_dir
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="restore-", dir=parent) as directory:
        yield Path(directory)
