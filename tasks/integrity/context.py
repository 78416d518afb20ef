"""What every check gets: an engine, the settings, the seed file, and the shared per-table scans."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import FromClause, Table, and_, func, select
from sqlalchemy.engine import Engine

from models.seed import SeedDocument
from models.settings import Settings


@dataclass(frozen=True)
class TableScan:
    """One pass over a table: its row count and, per foreign key, the rows whose parent is missing."""

    table: str
    rows: int
    orphans: dict[str, int]


@dataclass
class CheckContext:
    engine: Engine
    settings: Settings
    seed_document: SeedDocument | None
    _scans: dict[str, TableScan] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def scan(self, table: Table) -> TableScan:
        """The table's scan, computed once however many checks (in however many threads) ask."""
        with self._guard:
            lock = self._locks.setdefault(table.name, threading.Lock())
        with lock:
            if table.name not in self._scans:
                self._scans[table.name] = _scan(self.engine, table)
            return self._scans[table.name]

    def scanned(self) -> dict[str, TableScan]:
        return dict(self._scans)


def _scan(engine: Engine, table: Table) -> TableScan:
    """``count(*)`` plus an anti-join per foreign key, in a single sequential pass over *table*.

    A LEFT JOIN to each parent on its referenced (primary or unique) key cannot multiply rows, and a
    child row is an orphan when all its key columns are set but no parent matched.
    """
    child = table.alias("child")
    joined: FromClause = child
    orphan_counts = []
    names = []
    for number, key in enumerate(sorted(table.foreign_key_constraints, key=lambda k: str(k.name))):
        parent = key.referred_table.alias(f"parent_{number}")
        pairs = [(child.c[element.parent.name], parent.c[element.column.name]) for element in key.elements]
        joined = joined.outerjoin(parent, and_(*(local == remote for local, remote in pairs)))
        missing = and_(*(local.is_not(None) for local, _ in pairs), pairs[0][1].is_(None))
        orphan_counts.append(func.count().filter(missing))
        names.append(str(key.name))
    with engine.connect() as connection:
        row = connection.execute(select(func.count(), *orphan_counts).select_from(joined)).one()
    return TableScan(
        table=table.name, rows=int(row[0]), orphans=dict(zip(names, map(int, row[1:]), strict=True))
    )
