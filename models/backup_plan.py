"""How a multi-part backup divides a database, and the proof that it divided it exactly.

Pure: no I/O. The plan is read from the backup's exported snapshot, so it names exactly the tables
pg_dump sees. The tables are split into groups balanced by size, largest first, each dumped by its own
pg_dump. A sequence's value travels with the table that owns it (pg_dump sets owned sequences with
their table); the first group also takes every sequence no table owns, and the large objects. After
the dump, the parts' tables of contents (``pg_restore --list``) must show every planned table's data
and every sequence's value exactly once, or the backup fails.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field

#: A table at least this large is "large": the default parallelism is at most their number, since a
#: group without one would finish long before the others.
LARGE_TABLE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class PlannedTable:
    schema: str
    name: str
    oid: int
    bytes: int

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def pattern(self) -> str:
        """An exact ``pg_dump -t`` pattern: quoted, so neither case nor wildcards are interpreted."""
        return f"{_quoted(self.schema)}.{_quoted(self.name)}"


@dataclass(frozen=True)
class PlannedSequence:
    schema: str
    name: str
    owner_oid: int | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def pattern(self) -> str:
        return f"{_quoted(self.schema)}.{_quoted(self.name)}"


@dataclass
class DataGroup:
    """One data part: the tables it dumps, the sequences whose values it sets, and the large objects."""

    tables: list[PlannedTable] = field(default_factory=list)
    sequences: list[PlannedSequence] = field(default_factory=list)
    large_objects: bool = False

    @property
    def bytes(self) -> int:
        return sum(table.bytes for table in self.tables)

    def patterns(self) -> list[str]:
        """The patterns that select exactly this group's objects; owned sequences come with their table."""
        explicit = [sequence.pattern for sequence in self.sequences if sequence.owner_oid is None]
        return [table.pattern for table in self.tables] + explicit


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def default_parallelism(cores: int, tables: list[PlannedTable]) -> int:
    """The number of cores, at most the number of large tables, at least one."""
    large = sum(1 for table in tables if table.bytes >= LARGE_TABLE_BYTES)
    return max(1, min(cores, large))


def plan_groups(
    tables: list[PlannedTable], sequences: list[PlannedSequence], groups: int, *, large_objects: bool
) -> list[DataGroup]:
    """*tables* in at most *groups* groups of balanced size: each table, largest first, joins the
    group that is smallest so far (ties to the lower index). Each owned sequence joins its owner's
    group; the first group takes the unowned ones and the large objects. No group is empty, unless there
    is nothing to dump at all."""
    count = max(1, min(groups, len(tables)))
    planned = [DataGroup() for _ in range(count)]
    sizes = [(0, index) for index in range(count)]
    heapq.heapify(sizes)
    owner_group: dict[int, int] = {}
    for table in sorted(tables, key=lambda table: (-table.bytes, table.qualified)):
        size, index = heapq.heappop(sizes)
        planned[index].tables.append(table)
        owner_group[table.oid] = index
        heapq.heappush(sizes, (size + table.bytes, index))
    for sequence in sorted(sequences, key=lambda sequence: sequence.qualified):
        owner = owner_group.get(sequence.owner_oid) if sequence.owner_oid is not None else None
        if owner is None:  # unowned, or owned by a table that is not dumped: set it by name
            sequence = PlannedSequence(sequence.schema, sequence.name, None)
        planned[owner or 0].sequences.append(sequence)
    planned[0].large_objects = large_objects
    return planned


@dataclass(frozen=True)
class Listing:
    """What one part's table of contents holds, from ``pg_restore --list``."""

    table_oids: list[int]
    sequences: list[str]  # "schema name owner", as pg_restore prints them
    large_objects: bool


def parse_listing(listing: str) -> Listing:
    """The table data (by OID), sequence values and large objects a ``pg_restore --list`` output names.

    Lines look like ``2578; 0 16386 TABLE DATA public a owner``; names may hold spaces, so tables are
    identified by the OID and sequences by the text after ``SEQUENCE SET``.
    """
    tables: list[int] = []
    sequences: list[str] = []
    large_objects = False
    for line in listing.splitlines():
        if line.startswith(";") or ";" not in line:
            continue
        fields = line.split(";", 1)[1].strip().split(" ", 2)
        if len(fields) < 3:
            continue
        kind_and_names = fields[2]
        if kind_and_names.startswith("TABLE DATA "):
            tables.append(int(fields[1]))
        elif kind_and_names.startswith("SEQUENCE SET "):
            sequences.append(kind_and_names.removeprefix("SEQUENCE SET "))
        elif kind_and_names.startswith(("BLOBS ", "LARGE OBJECTS ")):
            large_objects = True
    return Listing(tables, sequences, large_objects)


def coverage_problems(
    tables: list[PlannedTable],
    sequences: list[PlannedSequence],
    large_objects: bool,
    listings: dict[str, Listing],
) -> list[str]:
    """Why the parts (*listings*, by part name) do not hold every planned table's data and sequence's
    value exactly once, and the large objects in one part if there are any; empty when they do."""
    problems = []
    seen_tables = Counter(oid for listing in listings.values() for oid in listing.table_oids)
    for table in tables:
        if seen_tables[table.oid] != 1:
            problems.append(f"table {table.qualified} is in {seen_tables[table.oid]} parts")
    unplanned = set(seen_tables) - {table.oid for table in tables}
    if unplanned:
        problems.append(f"{len(unplanned)} table(s) not in the plan were dumped (OIDs {sorted(unplanned)})")
    listed = [entry for listing in listings.values() for entry in listing.sequences]
    for sequence in sequences:
        prefix = f"{sequence.schema} {sequence.name} "
        found = sum(1 for entry in listed if entry.startswith(prefix))
        if found != 1:
            problems.append(f"sequence {sequence.qualified} is set in {found} parts")
    if len(listed) != len(sequences):
        problems.append(f"{len(listed)} sequence values were dumped for {len(sequences)} sequences")
    holding = sum(1 for listing in listings.values() if listing.large_objects)
    if holding != (1 if large_objects else 0):
        problems.append(f"the large objects are in {holding} parts")
    return problems
