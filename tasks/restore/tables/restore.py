"""Table-level restore: chosen tables' rows from a backup into a new schema of the live database, for
inspection, and on request merged back into the live tables.

The common accident is one university's applications deleted or overwritten. Restoring the whole
database would throw away everything written since the backup; this brings back only the rows that
are missing (or, with ``replace``, that differ), matched by primary key.

Two steps, so a flow can ask a person in between: :func:`restore_into_schema` (refusals, the
verified stream, the filter, the schema, and a preview of what a merge would do) and
:func:`merge_into_live` (one transaction, parents first). :func:`restore_tables` is both, for the
command line. Everything that can refuse does so before the backup is read, and nothing is created
before the whole stored object has matched its manifest (see ``stream``).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from sqlalchemy.engine import URL

from models.backup import BackupManifest, BackupSource
from models.database_url import describe
from models.errors import RestoreRefusedError
from models.settings import Settings
from models.table_restore import TableRestoreRequest, TableRestoreResult
from tasks.backup.source import database_source
from tasks.postgres.binaries import pg_restore_for
from tasks.postgres.driver import connect
from tasks.postgres.engine import database_url
from tasks.postgres.guard import maintenance_guard
from tasks.restore.copy import Logger, choose_backup
from tasks.restore.fetch import check_decryptable
from tasks.restore.tables.catalog import (
    Connection,
    LiveCatalog,
    read_catalog,
    schema_exists,
    unfiltered_tables,
)
from tasks.restore.tables.merge import merge_schema
from tasks.restore.tables.plan import (
    check_in_backup,
    check_live,
    check_mergeable,
    check_where_applies,
    checked_request,
    merge_order,
)
from tasks.restore.tables.schema import (
    SchemaTable,
    describe_tables,
    filter_staged,
    preview,
    publish,
    schema_tables,
    schema_taken,
)
from tasks.restore.tables.stream import StagedTable, stage_tables
from tasks.restore.target import run_id
from tasks.storage import ObjectStore

_log = logging.getLogger(__name__)

_SCHEMA_COLUMNS = """
    SELECT c.relname, array_agg(a.attname::text ORDER BY a.attnum)
    FROM pg_class AS c
    JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE c.relnamespace = %s::regnamespace AND c.relname = ANY(%s)
    GROUP BY c.relname
"""


def restore_tables(
    settings: Settings, store: ObjectStore, request: TableRestoreRequest, *, logger: Logger | None = None
) -> TableRestoreResult:
    """Restore into the schema and, when the request says so, merge: the command line's composition."""
    result = restore_into_schema(settings, store, request, logger=logger)
    if request.merge:
        result = merge_into_live(settings, result, replace=request.replace, logger=logger)
    return result


def restore_into_schema(
    settings: Settings, store: ObjectStore, request: TableRestoreRequest, *, logger: Logger | None = None
) -> TableRestoreResult:
    """The request's tables' rows from its backup, filtered, in the new schema it names, with what a
    merge would do per table; raises :class:`RestoreRefusedError` with nothing touched when the
    request cannot be carried out."""
    log = logger or _log
    request = checked_request(request)
    url = database_url(settings)
    started = time.monotonic()
    timeout_ms = int(settings.command_timeout_seconds * 1000)
    with _connect(url, settings) as connection:
        manifest = _backup(store, settings, url, request)
        catalog = read_catalog(connection, request.tables)
        check_live(request.tables, catalog.tables, describe(url))
        if request.merge:
            check_mergeable({table: catalog.tables[table].key for table in request.tables})
        if schema_exists(connection, request.into_schema):
            raise schema_taken(request.into_schema)
        unfiltered: dict[str, str] = {}
        if request.where is not None:
            unfiltered = unfiltered_tables(
                connection, catalog, request.tables, request.where, statement_timeout_ms=timeout_ms
            )
            check_where_applies(request.where, unfiltered, request.tables, replace=request.replace)
        identities = check_decryptable(manifest, settings)
        pg_restore = pg_restore_for(manifest.pg_dump_version, settings.pg_bindir)
        order = merge_order(request.tables, [(key.table, key.references) for key in catalog.foreign_keys])
        log.info(
            "restoring %s from backup %s into schema %s of %s%s",
            ", ".join(order),
            manifest.backup_id,
            request.into_schema,
            describe(url),
            f", where {request.where}" if request.where else "",
        )
        staged = stage_tables(
            connection,
            store,
            manifest,
            identities=identities,
            pg_restore=pg_restore,
            catalog=catalog,
            tables=order,
            settings=settings,
            log=log,
        )
        filtered = [table for table in order if request.where is not None and table not in unfiltered]
        kept = (
            filter_staged(connection, staged, request.where, filtered, statement_timeout_ms=timeout_ms)
            if request.where is not None
            else {}
        )
        counts = publish(
            connection,
            catalog,
            staged,
            order,
            schema=request.into_schema,
            kept=kept,
            comment=_comment(manifest, order),
        )
        tables = describe_tables(order, manifest.row_counts, counts, unfiltered, request.where is not None)
        for restored, merging in zip(tables, _merging(catalog, staged, order), strict=True):
            if merging.key:
                restored.missing, restored.present, restored.differing = preview(
                    connection, catalog, request.into_schema, merging
                )
    result = TableRestoreResult(
        backup_id=manifest.backup_id,
        backup_finished_at=manifest.finished_at,
        database=str(url.database),
        server=f"{url.host}:{url.port}",
        schema_name=request.into_schema,
        where=request.where,
        tables=tables,
        replace=request.replace,
        restored_at=datetime.now(UTC),
        restore_seconds=round(time.monotonic() - started, 3),
    )
    log.info(
        "schema %s holds %s",
        request.into_schema,
        ", ".join(f"{table.table} ({table.rows} rows)" for table in result.tables),
    )
    return result


def merge_into_live(
    settings: Settings, result: TableRestoreResult, *, replace: bool, logger: Logger | None = None
) -> TableRestoreResult:
    """Merge the rows of *result*'s schema into the live tables, in one transaction; the result with
    the counts of what the merge did. Raises :class:`~models.errors.TableMergeError` (nothing merged,
    the schema kept) when a constraint would break."""
    log = logger or _log
    url = database_url(settings)
    started = time.monotonic()
    names = [table.table for table in result.tables]
    # The merge writes the live tables: never while a backup, restore or archive of them runs.
    with (
        maintenance_guard(url, settings, url.database or "", "restore-tables", logger=log),
        _connect(url, settings) as connection,
    ):
        catalog = read_catalog(connection, names)
        check_live(names, catalog.tables, describe(url))
        merging = _schema_tables_of(connection, catalog, result.schema_name, names)
        check_mergeable({table.table: table.key for table in merging})
        counts = merge_schema(
            connection,
            catalog,
            result.schema_name,
            merging,
            replace=replace,
            lock_timeout_ms=int(settings.lock_wait_timeout_seconds * 1000),
            statement_timeout_ms=int(settings.command_timeout_seconds * 1000),
            log=log,
        )
    tables = [table.model_copy(update={"merged": counts.get(table.table)}) for table in result.tables]
    return result.model_copy(
        update={
            "tables": tables,
            "merged": True,
            "replace": replace,
            "merge_seconds": round(time.monotonic() - started, 3),
        }
    )


def _connect(url: URL, settings: Settings) -> Connection:
    return connect(
        url, purpose="restore tables", autocommit=True, connect_timeout=settings.connect_timeout_seconds
    )


def _backup(store: ObjectStore, settings: Settings, url: URL, request: TableRestoreRequest) -> BackupManifest:
    """The backup to read, which must be of the live database (or of ``from_database``) and hold every
    table asked for."""
    source = database_source(url, settings)
    wanted = BackupSource(
        system_identifier=source.system_identifier, database=request.from_database or str(url.database)
    )
    manifest = choose_backup(store, request.backup_id, wanted, same_name=True)
    check_in_backup(request.tables, manifest.row_counts, manifest.backup_id)
    return manifest


def _merging(catalog: LiveCatalog, staged: dict[str, StagedTable], order: list[str]) -> list[SchemaTable]:
    tables = schema_tables(catalog, staged)
    return [tables[table] for table in order]


def _schema_tables_of(
    connection: Connection, catalog: LiveCatalog, schema: str, names: list[str]
) -> list[SchemaTable]:
    """The schema's tables as a merge sees them, read back from the database: a person may have
    looked at (or pruned) them since they were restored."""
    if not schema_exists(connection, schema):
        raise RestoreRefusedError(
            f"schema {schema} does not exist any more, so there is nothing to merge",
            hint="restore the tables again (dbops restore-tables ... --merge)",
        )
    columns = {
        str(table): tuple(found) for table, found in connection.execute(_SCHEMA_COLUMNS, [schema, names])
    }
    missing = [name for name in names if name not in columns]
    if missing:
        raise RestoreRefusedError(
            f"schema {schema} has no table {', '.join(missing)} any more, so nothing was merged",
            hint="restore the tables again (dbops restore-tables ... --merge)",
        )
    staged = {name: StagedTable(name, columns=columns[name]) for name in names}
    return _merging(
        catalog, staged, merge_order(names, [(key.table, key.references) for key in catalog.foreign_keys])
    )


def _comment(manifest: BackupManifest, tables: list[str]) -> str:
    return (
        f"dbops restore-tables: {', '.join(tables)} from backup {manifest.backup_id} "
        f"(taken {manifest.finished_at:%Y-%m-%d %H:%M:%S} UTC), restored "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC by {run_id()}"
    )
