"""How a multi-part backup divides a database, and the proof that the parts hold what pg_dump would.

Pure: no I/O. The plan is read from the backup's exported snapshot. The tables are split into groups
balanced by size (and, where sizes are unknown, by number), largest first, each dumped by its own
pg_dump. A sequence's value travels with the table that owns it (pg_dump sets owned sequences with
their table, and an identity sequence only with it); the first group also takes every sequence no
planned table owns, and the large objects. Partitioned parents are planned too, though they hold no
rows: their identity sequences are set only with them.

The proof does not trust the plan. A pg_dump of the whole database in the same snapshot lists what a
single pg_dump would emit; every entry of that table of contents must be in exactly one part, and no
part may hold an entry it lacks (:func:`coverage_problems`).
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
    #: A partitioned parent: no rows of its own, but its identity sequence is set only with it.
    partitioned: bool = False

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
    #: An extension's configuration sequence: pg_dump sets it only when it is named.
    extension_config: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def pattern(self) -> str:
        return f"{_quoted(self.schema)}.{_quoted(self.name)}"

    @property
    def named(self) -> bool:
        """Whether the part's pg_dump must name it: owned sequences come with their table."""
        return self.owner_oid is None or self.extension_config


@dataclass
class DataGroup:
    """One data part: the tables it dumps, the sequences whose values it sets, and the large objects."""

    tables: list[PlannedTable] = field(default_factory=list)
    sequences: list[PlannedSequence] = field(default_factory=list)
    large_objects: bool = False

    @property
    def bytes(self) -> int:
        return sum(table.bytes for table in self.tables)

    @property
    def row_tables(self) -> list[PlannedTable]:
        """The tables whose rows the part holds (a partitioned parent's are in its partitions)."""
        return [table for table in self.tables if not table.partitioned]

    def patterns(self) -> list[str]:
        """The patterns that select exactly this group's objects; owned sequences come with their table."""
        named = [sequence.pattern for sequence in self.sequences if sequence.named]
        return [table.pattern for table in self.tables] + named


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
    group that is smallest so far, by size and then by number of tables (ties to the lower index), so
    that tables of unknown size (never analysed: 0 pages) are dealt out in turn. No group is ever
    without rows: there are at most as many groups as tables with rows of their own, which are dealt
    before the partitioned parents (a pg_dump ``--data-only`` without a ``-t`` would dump everything).
    Each owned sequence joins its owner's group; the first group takes the others and the large
    objects."""
    count = max(1, min(groups, sum(1 for table in tables if not table.partitioned)))
    planned = [DataGroup() for _ in range(count)]
    loads = [(0, 0, index) for index in range(count)]
    heapq.heapify(loads)
    owner_group: dict[int, int] = {}
    for table in sorted(tables, key=lambda table: (table.partitioned, -table.bytes, table.qualified)):
        size, number, index = heapq.heappop(loads)
        planned[index].tables.append(table)
        owner_group[table.oid] = index
        heapq.heappush(loads, (size + table.bytes, number + 1, index))
    for sequence in sorted(sequences, key=lambda sequence: sequence.qualified):
        owner = owner_group.get(sequence.owner_oid) if sequence.owner_oid is not None else None
        if owner is None:  # unowned, or owned by a table that is not planned: set it by name
            sequence = PlannedSequence(sequence.schema, sequence.name, None, sequence.extension_config)
        planned[owner or 0].sequences.append(sequence)
    planned[0].large_objects = large_objects
    return planned


def toc_entries(listing: str) -> list[str]:
    """The entries of a ``pg_restore --list`` output, each as ``tableoid oid KIND schema name owner``.

    Dump ids differ from one pg_dump to the next and are dropped; catalogue OIDs and names are the
    snapshot's, the same in every pg_dump of it.
    """
    entries = []
    for line in listing.splitlines():
        if line.startswith(";") or ";" not in line:
            continue
        entry = line.split(";", 1)[1].strip()
        if entry:
            entries.append(entry)
    return entries


def _kind_and_name(entry: str) -> str:
    """``TABLE DATA public a owner`` for ``0 16386 TABLE DATA public a owner``: what an operator reads."""
    fields = entry.split(" ", 2)
    return fields[2] if len(fields) == 3 else entry


def coverage_problems(selected: list[str], parts: dict[str, list[str]]) -> list[str]:
    """Why the parts' tables of contents (*parts*, by part name) do not together hold exactly what a
    single pg_dump of the snapshot selects (*selected*): an entry in no part, in several, or in a
    part but not in pg_dump's own selection. Empty when they do."""
    wanted = Counter(selected)
    held: dict[str, list[str]] = {}
    for name, entries in parts.items():
        for entry in entries:
            held.setdefault(entry, []).append(name)
    problems = []
    for entry, count in wanted.items():
        holders = held.get(entry, [])
        if len(holders) != count:
            where = ", ".join(holders) if holders else "no part"
            problems.append(f"{_kind_and_name(entry)} is in {where}")
    for entry, holders in held.items():
        if entry not in wanted:
            problems.append(
                f"{_kind_and_name(entry)} is in {', '.join(holders)} but not in pg_dump's selection"
            )
    return problems
