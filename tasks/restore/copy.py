"""What a rehearsal and an operator restore share: choosing and vetting the backup, and turning an
unpacked dump into a migrated, checked database.

The order is fixed: restore, count (against the manifest, before anything changes the rows),
optionally reseed, migrate, validate. Failures of the copy are recorded in it, not raised, so the
caller decides what happens to the database (a rehearsal drops it, a swap never puts it in place).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic.script.revision import ResolutionError
from alembic.util.exc import CommandError as AlembicCommandError
from sqlalchemy.engine import URL

from models.backup import BackupManifest, BackupSource, is_backup_id, source_of, timelines
from models.errors import RestoreRefusedError
from models.integrity import IntegrityReport
from models.plan import RevisionTrace, judge
from models.rehearsal import CountMismatch, RestoredCopy
from models.seed import SeedDocument
from models.settings import Settings
from tasks.backup.catalog import backup_keys, complete_backup_ids, list_backups, read_manifest
from tasks.backup.source import count_rows
from tasks.integrity.runner import validate_integrity
from tasks.integrity.staged import StagedChecks
from tasks.postgres.binaries import Program, pg_restore_for
from tasks.postgres.engine import make_engine, open_connection
from tasks.postgres.libpq import needs_tls
from tasks.restore.fetch import check_decryptable
from tasks.restore.leftovers import mark_work_directory
from tasks.restore.parts import FetchedBackup
from tasks.restore.target import check_privileges, database_size, server_version_num
from tasks.schema.migrate import head_revision, migrate, script_directory
from tasks.schema.tracer import trace_upgrade
from tasks.seed.upsert import load_seed_document, seed, seed_file_path
from tasks.storage import ObjectStore

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
#: Runs the integrity checks on a restored database; a flow passes one that publishes artifacts.
Validator = Callable[[URL], IntegrityReport]
#: Shows a report the restore's own checks produced (a flow's artifacts).
Publisher = Callable[[IntegrityReport], None]


def choose_backup(
    store: ObjectStore, backup_id: str | None, wanted: BackupSource, *, same_name: bool
) -> BackupManifest:
    """The backup named (a complete one), or the newest of *wanted*'s timeline for None or ``latest``.

    One store may hold several databases' backups, so ``latest`` means the newest backup of the
    database wanted: by name, and among same-named databases of several servers, the one on
    *wanted*'s server (a fresh disaster-recovery server has another identity, so a single other
    source is taken too). With *same_name* (a restore), a backup named by id must come from a
    database of *wanted*'s name, so a staging backup never lands on production by a slip.
    """
    if backup_id in (None, "latest"):
        return _newest_of(store, wanted)
    assert backup_id is not None
    if not is_backup_id(backup_id):
        raise RestoreRefusedError(
            f"{backup_id!r} is not a backup id",
            hint="dbops backups lists them (e.g. 20261127T020000Z-3fa9c1), or pass latest",
        )
    if backup_id not in complete_backup_ids(backup_keys(store)):
        raise RestoreRefusedError(
            f"backup {backup_id} has no manifest in {store.describe()}: it is incomplete or does not exist",
            hint="dbops backups lists the complete backups",
        )
    manifest = read_manifest(store, backup_id)
    source = source_of(manifest).database
    if same_name and source != wanted.database:
        raise RestoreRefusedError(
            f"backup {backup_id} is of database {source}, not {wanted.database}; nothing was done",
            hint=f"to restore {source}'s backup into {wanted.database} on purpose, "
            f"pass --from-database {source}",
        )
    return manifest


def _newest_of(store: ObjectStore, wanted: BackupSource) -> BackupManifest:
    manifests = list_backups(store)
    if not manifests:
        raise RestoreRefusedError(
            f"there is no complete backup in {store.describe()}", hint="take one with dbops backup"
        )
    named = [manifest for manifest in manifests if source_of(manifest).database == wanted.database]
    if not named:
        held = sorted({source_of(manifest).database for manifest in manifests})
        raise RestoreRefusedError(
            f"there is no complete backup of database {wanted.database} in {store.describe()}",
            detail=f"it holds backups of {', '.join(held)}",
            hint="pass --from-database NAME to restore another database's backup, or --backup ID",
        )
    groups = timelines(named)
    own = [group for key, group in groups.items() if key.startswith(f"{wanted.system_identifier}/")]
    if own or len(groups) == 1:
        return (own or list(groups.values()))[0][0]
    newest = "; ".join(
        f"{group[0].backup_id} from server {key.split('/')[0]}" for key, group in groups.items()
    )
    raise RestoreRefusedError(
        f"backups of database {wanted.database} come from {len(groups)} servers, none of them this one",
        detail=f"newest of each: {newest}",
        hint="pass --backup ID to say which",
    )


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


def check_dump_loadable(manifest: BackupManifest, server_major: int, server: str) -> None:
    """Refuse a dump written by a pg_dump newer than the server it would load into.

    pg_dump's output loads only into a server of at least pg_dump's own major, even when the dump was
    taken from an older server: a PostgreSQL 15 server dumped by pg_dump 18 cannot be restored into
    15, since every pg_restore that reads the dump sets parameters 15 rejects (transaction_timeout).
    """
    dump_major = int(manifest.pg_dump_version.split(".", 1)[0])
    if server_major >= dump_major:
        return
    source = f"the backup is of a PostgreSQL {manifest.server_version} server"
    if server_major >= int(manifest.server_version.split(".", 1)[0]):
        source += ", dumped by a newer pg_dump because none of its own major was found where it ran"
    raise RestoreRefusedError(
        f"backup {manifest.backup_id} was written by pg_dump {manifest.pg_dump_version}, and its dump "
        f"loads only into PostgreSQL {dump_major} or later; {server} is PostgreSQL {server_major}",
        detail=source,
        hint=f"restore it into a server of PostgreSQL {dump_major} or later (for rehearsals, "
        f"DBOPS_REHEARSAL_DATABASE_URL); so that later backups restore into PostgreSQL {server_major}, "
        f"install its client programs (e.g. postgresql-client-{server_major}) where backups run",
    )


def check_pg_restore_fits(pg_restore: Program, server_major: int, server: str) -> None:
    """Refuse to run a pg_restore newer than the server it loads into: its session settings need not
    exist there (pg_restore 17 and later set transaction_timeout, which 15 and 16 reject)."""
    if pg_restore.major <= server_major:
        return
    raise RestoreRefusedError(
        f"the pg_restore that reads this dump is {pg_restore.number} ({pg_restore.path}), newer than "
        f"{server}, which is PostgreSQL {server_major}",
        detail="pg_restore's output is loadable only into a server of at least its own major",
        hint=f"install the PostgreSQL {server_major} client programs (e.g. postgresql-client-{server_major}) "
        "or set DBOPS_PG_BINDIR to their bin directory",
    )


def vet_backup(
    store: ObjectStore,
    backup_id: str | None,
    settings: Settings,
    server: URL,
    *,
    wanted: BackupSource,
    target: str | None = None,
) -> tuple[BackupManifest, Program]:
    """The backup to restore, and a pg_restore that reads it into *server*, once every refusal that
    needs nothing but the manifest and the server has had its say: no such backup, a revision this
    code does not know, no key, a role without the grants a restore needs
    (:func:`~tasks.restore.target.check_privileges`), a dump or a pg_restore newer than the server, no
    pg_restore that fits. An unreachable server or a missing grant is the environment's fault, not the
    backup's: it fails here, before any download, and records nothing."""
    manifest = choose_backup(store, backup_id, wanted, same_name=target is not None)
    check_migratable(manifest)
    check_decryptable(manifest, settings)
    check_privileges(server, settings, target=target)
    server_major = server_version_num(server, settings) // 10000
    where = f"the server at {server.host}:{server.port}"
    check_dump_loadable(manifest, server_major, where)
    pg_restore = pg_restore_for(manifest.pg_dump_version, settings.pg_bindir, tls=needs_tls(server))
    check_pg_restore_fits(pg_restore, server_major, where)
    return manifest, pg_restore


def copy_basis(
    manifest: BackupManifest, server: URL, pg_restore: Program, settings: Settings
) -> dict[str, Any]:
    """The fields every :class:`RestoredCopy` starts from."""
    return {
        "backup_id": manifest.backup_id,
        "server": f"{server.host}:{server.port}",
        "backup_revision": manifest.alembic_revision,
        "pg_restore_version": pg_restore.number,
        "jobs": settings.restore_jobs,
        "stored_bytes": manifest.stored_bytes,
    }


def count_mismatches(expected: dict[str, int], restored: dict[str, int]) -> list[CountMismatch]:
    """Tables whose rows differ between the manifest and the restored copy (missing ones included)."""
    return [
        CountMismatch(table=table, manifest=expected.get(table), restored=restored.get(table))
        for table in sorted(expected.keys() | restored.keys())
        if expected.get(table) != restored.get(table)
    ]


def restore_and_check(
    copy: RestoredCopy,
    fetched: FetchedBackup,
    url: URL,
    manifest: BackupManifest,
    settings: Settings,
    pg_restore: Program,
    *,
    keep_ownership: bool,
    validate: Validator | None,
    log: Logger,
    reseed: bool = False,
    pending: list[RevisionTrace] | None = None,
    staged: bool = False,
    publish: Publisher | None = None,
    unlogged: bool = False,
) -> None:
    """Restore the *fetched* backup into the empty database at *url* and check it, filling in *copy*.

    The rows are counted while post-data builds the indexes (nothing after the data changes them).
    With *staged* and no *validate*, the integrity checks that need only rows run then too
    (:class:`~tasks.integrity.staged.StagedChecks`), and the full report after the migration reuses
    them when the migration applied nothing; *publish* gets that report. *unlogged*: a copy dropped
    after its proof, whose tables need not be WAL-logged (:mod:`tasks.restore.unlogged`). With
    *pending*, the migration to the code's head runs with the tracer, and each revision it applied
    is added to *pending*, measured and judged as ``dbops migrate --plan`` would.
    """
    timings = copy.timings
    early = StagedChecks(url, settings, _seed_document(settings)) if staged and validate is None else None
    counted: dict[str, int] = {}

    def beside_post_data() -> None:
        started = time.monotonic()
        counted.update(_count(url, settings))
        if early is not None:
            early.data_stage(log)
        timings.early_checks = round(time.monotonic() - started, 3)

    try:
        fetched.restore(
            url,
            pg_restore,
            settings,
            keep_ownership=keep_ownership,
            log=log,
            timings=timings,
            beside_post_data=beside_post_data,
            unlogged=unlogged,
        )
        phase = time.monotonic()
        copy.count_mismatches = count_mismatches(manifest.row_counts, counted)
        copy.restored_database_bytes = database_size(url, settings)
        timings.counts = round(time.monotonic() - phase, 3)
        phase = time.monotonic()
        _migrate(copy, url, settings, log, pending)
        if reseed:
            seed(url, settings, logger=log)
        timings.migrate = round(time.monotonic() - phase, 3)
        phase = time.monotonic()
        if early is not None:
            unchanged = not reseed and copy.migrated_to == manifest.alembic_revision
            staged_checks = early if unchanged else StagedChecks(url, settings, early.context.seed_document)
            try:
                report = staged_checks.report(log)
            finally:
                staged_checks.close()
        else:
            report = (validate or default_validator(settings, log))(url)
        if publish is not None:
            publish(report)
        timings.validation = round(time.monotonic() - phase, 3)
    finally:
        if early is not None:
            early.close()
    copy.validation_errors = [f"{check.name}: {check.detail}" for check in report.errors]
    copy.failure = verdict(copy)
    copy.passed = copy.failure is None


def _migrate(
    copy: RestoredCopy, url: URL, settings: Settings, log: Logger, pending: list[RevisionTrace] | None
) -> None:
    if pending is None:
        copy.migrated_to = migrate(url, settings, logger=log).revision_after
        return
    traced = trace_upgrade(url, settings, analyze=True, log=log)
    copy.migrated_to = traced.to_revision
    pending += [
        judge(
            revision,
            rows=traced.rows,
            max_lock_seconds=settings.migration_max_lock_seconds,
            max_rewrite_mb=settings.migration_max_rewrite_mb,
        )
        for revision in traced.revisions
    ]


def _seed_document(settings: Settings) -> SeedDocument:
    return load_seed_document(seed_file_path(settings))


def verdict(copy: RestoredCopy) -> str | None:
    if copy.count_mismatches:
        listed = ", ".join(
            f"{m.table} {m.manifest} in the manifest, {m.restored} restored" for m in copy.count_mismatches
        )
        return f"row counts differ from the manifest in {len(copy.count_mismatches)} table(s): {listed}"
    if copy.validation_errors:
        failed = "; ".join(copy.validation_errors)
        return f"{len(copy.validation_errors)} integrity check(s) failed: {failed}"
    return None


def default_validator(settings: Settings, log: Logger) -> Validator:
    seed_document = _seed_document(settings)
    return lambda url: validate_integrity(url, settings, seed_document=seed_document, logger=log)


@contextmanager
def work_directory(settings: Settings, run: str) -> Iterator[Path]:
    """A private directory for the unpacked dump, removed with everything in it afterwards, and
    marked with its owner so that a sweep removes it if this process is killed first."""
    parent = settings.effective_restore_work_dir
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="restore-", dir=parent) as directory:
        mark_work_directory(Path(directory), run)
        yield Path(directory)


def _count(url: URL, settings: Settings) -> dict[str, int]:
    engine = make_engine(url, settings, purpose="restore")
    try:
        with open_connection(engine) as connection:
            return count_rows(connection)
    finally:
        engine.dispose()
