"""Bring archived rows back for an audit: into their table (ids already there are skipped) or into a
staging table beside it.

Each object's sha256 is checked against the one stored with it before a row is read, and each
object is imported in one transaction, so an interrupted import can simply be run again.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from datetime import date

from psycopg import sql
from pydantic import BaseModel
from sqlalchemy.engine import URL

from models.errors import ArchiveError, ConfigurationError
from models.log_archive import ARCHIVE_FOLDER, batch_day
from models.settings import Settings
from tasks.log_archive.archiving import JSON_LINES, check_table
from tasks.postgres.driver import connect
from tasks.storage import ObjectStore

_log = logging.getLogger(__name__)


class ImportOutcome(BaseModel):
    table: str
    into: str
    objects: int
    rows_read: int
    rows_inserted: int

    @property
    def rows_skipped(self) -> int:
        return self.rows_read - self.rows_inserted


def import_archive(
    url: URL,
    settings: Settings,
    store: ObjectStore,
    table: str,
    first_day: date,
    last_day: date,
    *,
    into: str | None = None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> ImportOutcome:
    """Import every batch of *table* dated *first_day* to *last_day* (inclusive, UTC)."""
    log = logger or _log
    check_table(table)
    if first_day > last_day:
        raise ConfigurationError(f"--from {first_day} is after --to {last_day}", hint="swap the two dates")
    keys = sorted(
        stored.key
        for stored in store.list_objects(f"{ARCHIVE_FOLDER}/{table}")
        if (day := batch_day(stored.key)) is not None and first_day <= day <= last_day
    )
    target = into or table
    rows_read = rows_inserted = 0
    with connect(
        url, purpose="archive import", connect_timeout=settings.connect_timeout_seconds
    ) as connection:
        if into is not None:
            connection.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS INCLUDING INDEXES)"
                ).format(sql.Identifier(into), sql.Identifier(table))
            )
            connection.commit()
        for key in keys:
            lines = _read_verified(store, key)
            with connection.transaction():
                connection.execute("CREATE TEMPORARY TABLE incoming (document jsonb) ON COMMIT DROP")
                with connection.cursor() as cursor:
                    with cursor.copy(
                        sql.SQL("COPY incoming FROM STDIN WITH ({})").format(JSON_LINES)
                    ) as copy:
                        copy.write(lines)
                    read = cursor.rowcount
                inserted = connection.execute(
                    sql.SQL(
                        "INSERT INTO {target} SELECT (jsonb_populate_record(NULL::{target}, document)).* "
                        "FROM incoming ON CONFLICT (id) DO NOTHING"
                    ).format(target=sql.Identifier(target))
                ).rowcount
            rows_read += read
            rows_inserted += inserted
            log.info("%s: %d rows, %d inserted into %s", key, read, inserted, target)
    return ImportOutcome(
        table=table, into=target, objects=len(keys), rows_read=rows_read, rows_inserted=rows_inserted
    )


def _read_verified(store: ObjectStore, key: str) -> bytes:
    data = store.read_bytes(key)
    expected = store.read_metadata(key).get("sha256")
    actual = hashlib.sha256(data).hexdigest()
    if expected != actual:
        raise ArchiveError(
            f"archived object {key} does not match the sha256 stored with it",
            detail=f"read {actual[:16]}..., expected {str(expected)[:16]}...",
            hint="the object is damaged; restore it from the store's versioning or replication",
        )
    return gzip.decompress(data)
