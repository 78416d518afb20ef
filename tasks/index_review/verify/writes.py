"""What an index costs the table's writes: the WAL of a fixed batch of inserts without and with it.

The batch copies existing rows of the table back into it (so the values, and so the index entries,
look like the table's own) in a transaction that is rolled back. Columns with a default that makes
each row unique (an identity, a sequence) are left out so the default fills them; a unique column
without one makes the table unmeasurable this way, and the measurement says so rather than guess.
The WAL is the difference of ``pg_current_wal_insert_lsn()`` around the batch: a rolled-back
transaction's records were written all the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.index_review.verify.sampling import Session
from tasks.postgres.engine import quote_identifier

#: Rows in the batch: enough that the index's share is clear of the transaction's fixed records.
INSERT_BATCH_ROWS = 1_000

_COLUMNS = """
    SELECT a.attname,
           a.attidentity <> '' OR a.attgenerated <> '' OR d.adbin IS NOT NULL AS defaulted,
           a.attgenerated <> '' AS generated,
           EXISTS (SELECT FROM pg_index AS i
                   WHERE i.indrelid = a.attrelid AND i.indisunique AND a.attnum = ANY (i.indkey)) AS unique
    FROM pg_attribute AS a
    LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
"""


@dataclass(frozen=True)
class InsertBatch:
    """The batch's ``INSERT ... SELECT``, or why the table cannot take one."""

    sql: str | None
    reason: str | None = None


def insert_batch(connection: Session, schema: str, table: str, rows: int = INSERT_BATCH_ROWS) -> InsertBatch:
    relation = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    copied: list[str] = []
    for name, defaulted, generated, unique in connection.execute(_COLUMNS, (relation,)).fetchall():
        if generated or (unique and defaulted):
            continue
        if unique:
            return InsertBatch(None, reason=f"{table}.{name} is unique and has no default to fill it")
        copied.append(quote_identifier(str(name)))
    columns = ", ".join(copied)
    return InsertBatch(
        f"INSERT INTO {relation} ({columns}) SELECT {columns} FROM {relation} LIMIT {int(rows)}"
    )


def insert_wal_bytes(connection: Session, batch: InsertBatch) -> int | None:
    """WAL bytes the batch wrote, rolled back; None when the table cannot take the batch."""
    if batch.sql is None:
        return None
    with connection.transaction(force_rollback=True):
        start = connection.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        connection.execute(batch.sql)
        written = connection.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)::bigint",
            (start[0] if start else None,),
        ).fetchone()
    return int(written[0]) if written else None
