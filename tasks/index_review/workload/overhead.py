"""What an index costs the table's writes, in the units the candidates' savings are scored in.

A candidate's saving is calls times planner cost saved, over the window the calls were counted in. Its
overhead is put in the same units: every row inserted, and every update, writes an index entry, and
writing an entry costs a share of writing the row, the share being the entry's width over the row's.
:data:`ROW_WRITE_COST` prices one row write in planner cost units: about what the planner charges to
read two and a half random pages (``random_page_cost`` = 4), a heap page and its WAL with a little to
spare.

HOT updates are the other cost. An update that changes no indexed column stays on its page and writes
no index entry; an index on a column the update changes ends that, at the price of a full row write
(the new tuple plus entries in every index). The table's counters do not say which columns the updates
change. Where every ``UPDATE`` of the table that pg_stat_statements holds can be read, the columns
they assign are known, and an index on none of them breaks nothing; otherwise (an upsert, a statement
hidden from the role or evicted from pg_stat_statements, or no update recorded at all though the
table has HOT updates) the estimate is pessimistic and counts every HOT update as broken. A table
without HOT updates pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tasks.index_review.workload.candidates import ColumnStatistics

#: Planner cost units of writing one heap row (see the module docstring).
ROW_WRITE_COST = 10.0
#: Bytes each heap tuple costs beyond its columns: the 23-byte header padded to 24, and its line pointer.
HEAP_TUPLE_OVERHEAD = 28
#: Bytes each btree entry costs beyond its columns: the 8-byte index tuple header and its line pointer.
INDEX_TUPLE_OVERHEAD = 12
#: A column without statistics is taken to be this wide.
UNKNOWN_WIDTH = 8


@dataclass(frozen=True)
class TableWrites:
    """A table's write counters (``pg_stat_user_tables``) over *seconds* since they started counting."""

    inserts: int
    updates: int
    hot_updates: int
    seconds: float

    def per_second(self, count: int) -> float:
        return count / self.seconds if self.seconds > 0 else 0.0


def width_share(columns: Iterable[str], statistics: Mapping[str, ColumnStatistics]) -> float:
    """An entry of an index on *columns* as a share of the table's row width."""
    row = HEAP_TUPLE_OVERHEAD + sum(column.avg_width for column in statistics.values())
    entry = INDEX_TUPLE_OVERHEAD + sum(
        statistics[column].avg_width if column in statistics else UNKNOWN_WIDTH for column in columns
    )
    return min(entry / row, 1.0) if row > 0 else 1.0


def write_overhead(
    columns: Iterable[str],
    statistics: Mapping[str, ColumnStatistics],
    writes: TableWrites,
    window_seconds: float,
    updated: frozenset[str] | None = None,
) -> float:
    """The index's estimated cost to the table's writes over *window_seconds*, the window the
    workload's calls were counted in, at the write rate the table's counters show. *updated*: the
    columns the table's updates assign, when all are known (None: unknown)."""
    columns = tuple(columns)
    share = width_share(columns, statistics)
    entries = writes.per_second(writes.inserts + writes.updates - writes.hot_updates) * window_seconds
    breaks_hot = updated is None or bool(updated & set(columns))
    broken_hot = writes.per_second(writes.hot_updates) * window_seconds if breaks_hot else 0.0
    return entries * share * ROW_WRITE_COST + broken_hot * ROW_WRITE_COST
