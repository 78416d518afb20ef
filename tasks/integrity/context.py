"""What every check gets: the database, the settings, the seed file, and reads memoised for the whole run."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import ForeignKeyConstraint, Select, Table, and_, exists, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from models.seed import SeedDocument
from models.settings import Settings
from tasks.postgres.engine import open_connection

T = TypeVar("T")


class ThreadConnections:
    """One connection per thread, opened on the thread's first query and kept to the end of the run.

    A fresh connection per query cost a backend start, authentication and a cold catalogue cache each
    time: about 50 of them made up a third of a validation on a small database. A connection is never
    shared by two threads (neither psycopg's nor SQLAlchemy's is thread-safe), so *n* threads open at
    most *n* connections, plus the one a thread hands back with :meth:`release` for the next to take.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._spare: list[Connection] = []
        self._opened: list[Connection] = []
        self._guard = threading.Lock()

    def get(self) -> Connection:
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            with self._guard:
                connection = self._spare.pop() if self._spare else None
            if connection is None:
                connection = open_connection(self._engine)
                with self._guard:
                    self._opened.append(connection)
            self._local.connection = connection
        return connection

    def release(self) -> None:
        """Hand this thread's connection to the next thread that needs one."""
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            self._local.connection = None
            with self._guard:
                self._spare.append(connection)

    def discard(self) -> None:
        """Forget this thread's connection (broken, say); its next query opens another."""
        connection: Connection | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with self._guard:
                self._opened.remove(connection)
            connection.invalidate()

    def close(self) -> None:
        with self._guard:
            opened, self._opened, self._spare = self._opened, [], []
        for connection in opened:
            connection.close()


@dataclass
class CheckContext:
    """Shared by the concurrently running checks of one run; reads are memoised per key, so a
    result two checks need (a table's row count, say) is computed once, by whichever asks first.

    A read that raises is memoised too: the check that needs it gets the same error, as if it had
    run the read itself, and reports it. *connections* is the runner's pool; without it (a check
    called on its own) each read opens a connection of its own.
    """

    engine: Engine
    settings: Settings
    seed_document: SeedDocument | None
    connections: ThreadConnections | None = None
    #: How many threads (and so connections) the checks of this context run on at once.
    parallelism: int = 1
    _results: dict[Hashable, Any] = field(default_factory=dict)
    _errors: dict[Hashable, Exception] = field(default_factory=dict)
    _locks: dict[Hashable, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for one read, in a transaction of its own that ends with the block."""
        if self.connections is None:
            with self.engine.connect() as connection:
                yield connection
            return
        connection = self.connections.get()
        try:
            yield connection
        finally:
            try:
                connection.rollback()
            except DBAPIError:
                self.connections.discard()

    def once(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._errors:
                raise self._errors[key]
            if key not in self._results:
                try:
                    self._results[key] = compute()
                except Exception as error:
                    self._errors[key] = error
                    raise
            return cast(T, self._results[key])

    def row_count(self, table: Table) -> int:
        """The table's exact row count. A table with a foreign key is counted by that key's orphan
        scan, which reads every row of it anyway: a count of its own would read the table again."""
        key = counting_key(table)
        return self.once(
            ("rows", table.name),
            lambda: _row_count(self, table) if key is None else self.key_scan(key).rows,
        )

    def orphan_count(self, key: ForeignKeyConstraint) -> int:
        """Rows whose key columns are all set but match no parent row, counted once per run."""
        return self.key_scan(key).orphans

    def key_scan(self, key: ForeignKeyConstraint) -> KeyScan:
        """One pass over *key*'s child table joined to its parent: its rows and its orphans."""
        return self.once(("orphans", str(key.name)), lambda: _key_scan(self, key))

    def row_counts(self) -> dict[str, int]:
        with self._guard:
            return {
                key[1]: value
                for key, value in self._results.items()
                if isinstance(key, tuple) and key[0] == "rows"
            }


def _row_count(context: CheckContext, table: Table) -> int:
    with context.connection() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


@dataclass(frozen=True)
class KeyScan:
    """What one scan of a foreign key's child table counted."""

    rows: int
    orphans: int


def counting_key(table: Table) -> ForeignKeyConstraint | None:
    """The foreign key whose orphan scan also counts *table*'s rows (the first declared), if any."""
    return next(iter(sorted(table.foreign_key_constraints, key=lambda key: str(key.name))), None)


def key_scan_query(key: ForeignKeyConstraint) -> Select[int, int]:
    """Every child row of *key* outer-joined to its parent: all rows, and those whose key is set but
    finds no parent. The referenced columns are unique (a foreign key requires it), so the join adds
    no rows; the parent is aliased so a key that refers to its own table joins two copies."""
    child, parent = key.table, key.referred_table.alias("parent")
    matches = and_(
        *(parent.c[element.column.name] == child.c[element.parent.name] for element in key.elements)
    )
    missing = and_(
        *(child.c[element.parent.name].is_not(None) for element in key.elements),
        parent.c[key.elements[0].column.name].is_(None),
    )
    return select(func.count(), func.count().filter(missing)).select_from(child.outerjoin(parent, matches))


def orphans_query(key: ForeignKeyConstraint) -> Select[Any]:
    """Child rows of *key* whose parent is missing: an anti-join, which PostgreSQL runs set-based."""
    child, parent = key.table, key.referred_table
    matches = and_(
        *(parent.c[element.column.name] == child.c[element.parent.name] for element in key.elements)
    )
    return select(child).where(
        *(child.c[element.parent.name].is_not(None) for element in key.elements), ~exists().where(matches)
    )


#: Above this many parent rows a hash table of their keys outgrows the CPU cache (about 5 MB of UUIDs).
LARGE_PARENT_ROWS = 100_000
PARENT_ROWS = text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:parent)")
CHILD_INDEX_KEYS = text("""
    SELECT array_agg(a.attname::text ORDER BY k.position)
    FROM pg_index AS x
    CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, position)
    JOIN pg_attribute AS a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
    WHERE x.indrelid = to_regclass(:child) AND x.indisvalid
    GROUP BY x.indexrelid
""")


def _key_scan(context: CheckContext, key: ForeignKeyConstraint) -> KeyScan:
    """Counted by a merge join when the parent table is large and the child's key is indexed.

    Keys are random UUIDs, so a hash join against a large parent probes a table far bigger than
    the CPU cache once per child row: 5M applications against 1M users took 3.8 s that way, and 1.2 s
    as a merge of the two btree indexes read in order. Without an index on the child's key the merge
    must sort the child's keys first: 2.8M audit logs against 140k users took 2.0 s so, and 0.8 s by
    the planner's hash. A small parent's hash stays in cache, and is kept.
    """
    columns = [element.parent.name for element in key.elements]
    with context.connection() as connection:
        parent_rows = connection.execute(PARENT_ROWS, {"parent": key.referred_table.name}).scalar()
        if parent_rows is not None and parent_rows >= LARGE_PARENT_ROWS:
            indexed = connection.execute(CHILD_INDEX_KEYS, {"child": key.table.name}).scalars()
            if any(list(index_keys[: len(columns)]) == columns for index_keys in indexed):
                connection.execute(text("SET LOCAL enable_hashjoin = off"))
        rows, orphans = connection.execute(key_scan_query(key)).one()
        return KeyScan(rows=int(rows), orphans=int(orphans))
