"""Index candidates from the scans' needs: ordered columns, optional partial predicate, merged and
stripped of what the existing indexes already serve.

The column order follows how a btree is used: equality columns first (most selective first, from
``pg_stats.n_distinct``), then one range column, which ends the usable prefix; or, in place of the
range, the sort columns, when a Limit above the Sort lets an index scan in that order stop early. A
scan that both filters on a range and sorts on another column gets both candidates, and the costing
(or the measurement) tells which one pays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from models.workload import IndexCandidate
from tasks.index_review.catalog import IndexInfo
from tasks.index_review.workload.expressions import IS_NOT_NULL, IS_NULL, ColumnRef, Comparison, SortKey
from tasks.index_review.workload.needs import ScanNeed
from tasks.postgres.engine import quote_identifier

#: A column with at most this many distinct values and a constant compared with it makes a partial
#: index (``WHERE status = 'pending'``) worth proposing beside the full one.
PARTIAL_MAX_DISTINCT = 100


@dataclass(frozen=True)
class ColumnStatistics:
    """One column's planner statistics (``pg_stats``)."""

    n_distinct: float  # negative: minus the fraction of rows (-1: unique)
    avg_width: int
    null_frac: float = 0.0

    def distinct(self, rows: float) -> float:
        return self.n_distinct if self.n_distinct >= 0 else -self.n_distinct * rows


@dataclass(frozen=True)
class TableStatistics:
    rows: float
    columns: Mapping[str, ColumnStatistics]


@dataclass(frozen=True)
class ExistingIndex:
    """An index already on the table that a candidate may duplicate: only plain btree key columns count."""

    schema: str
    table: str
    name: str
    columns: tuple[str, ...]
    predicate: str
    usable: bool


def existing_indexes(indexes: Iterable[IndexInfo]) -> list[ExistingIndex]:
    return [
        ExistingIndex(
            schema=index.schema,
            table=index.table,
            name=index.name,
            columns=index.column_names[: len(index.key_columns)],
            predicate=index.predicate,
            usable=index.is_valid and index.method == "btree" and not index.expressions,
        )
        for index in indexes
    ]


def _by_selectivity(columns: Iterable[str], table: TableStatistics | None) -> list[str]:
    """Most distinct values first; columns without statistics last, in the order the plan gave them."""
    ordered = list(dict.fromkeys(columns))
    if table is None:
        return ordered

    def distinct(column: str) -> float:
        statistics = table.columns.get(column)
        return statistics.distinct(table.rows) if statistics else 0.0

    return sorted(ordered, key=lambda column: -distinct(column))


def predicate(constant: Comparison) -> str:
    """The partial index's ``WHERE``, as PostgreSQL would print it back (so a later review matches it)."""
    column = quote_identifier(constant.column.name)
    if constant.operator in {IS_NULL, IS_NOT_NULL}:
        return f"{column} {constant.operator}"
    return f"{column} = {constant.constant}"


def normalised_predicate(text: str) -> str:
    """A predicate compared without parentheses, casts to text and spacing, which pg_get_expr adds."""
    return "".join(text.replace("::text", "").replace("(", "").replace(")", "").split()).lower()


def with_index_order(need: ScanNeed, existing: Sequence[ExistingIndex]) -> ScanNeed:
    """*need* with the sort keys of the index it was read in order by (see ``ScanNeed.ordered_by``):
    the same order with its filter's columns in front lets the scan stop at the Limit sooner."""
    if need.sort or need.ordered_by is None:
        return need
    name, backward = need.ordered_by
    index = next((i for i in existing if (i.schema, i.name) == (need.schema, name)), None)
    if index is None:
        return need
    keys = tuple(SortKey(ColumnRef(None, column), backward, backward) for column in index.columns)
    return replace(need, sort=keys)


def _shapes(need: ScanNeed, table: TableStatistics | None) -> list[tuple[str, ...]]:
    """The column lists one scan asks for: equality then range, and equality then sort."""
    equality = _by_selectivity([*need.equality, *need.join_keys], table)
    shapes = []
    ranges = _by_selectivity(need.ranges, table)
    if equality or ranges:
        shapes.append((*equality, *ranges[:1]))
    # A btree scanned forwards or backwards gives one direction for all its columns, NULLS where the
    # direction puts them: other orders would need DESC columns, which the advice does not write.
    sort = need.sort
    if sort and len({key.descending for key in sort}) == 1 and all(key.default_nulls for key in sort):
        columns = [key.column.name for key in sort]
        if not set(columns) & set(equality):
            shapes.append((*equality, *columns))
    return [shape for shape in dict.fromkeys(shapes) if shape]


def _partials(need: ScanNeed, table: TableStatistics | None) -> list[tuple[tuple[str, ...], str]]:
    found = []
    for constant in need.constants:
        statistics = table.columns.get(constant.column.name) if table else None
        low_cardinality = statistics is not None and statistics.distinct(table.rows if table else 0) <= (
            PARTIAL_MAX_DISTINCT
        )
        if constant.operator not in {IS_NULL, IS_NOT_NULL} and not low_cardinality:
            continue
        rest = replace(
            need, equality=tuple(c for c in need.equality if c != constant.column.name), constants=()
        )
        found += [(shape, predicate(constant)) for shape in _shapes(rest, table)]
    return found


def covered(candidate: IndexCandidate, existing: Sequence[ExistingIndex]) -> ExistingIndex | None:
    """An existing index whose leading columns are the candidate's (and, for a partial candidate,
    with the same predicate): the candidate would add nothing."""
    for index in existing:
        if not index.usable or (index.schema, index.table) != (candidate.schema_name, candidate.table):
            continue
        if index.columns[: len(candidate.columns)] != candidate.columns:
            continue
        theirs = normalised_predicate(index.predicate) if index.predicate else None
        ours = normalised_predicate(candidate.where) if candidate.where else None
        if theirs == ours:
            return index
    return None


def build_candidates(
    needs: Sequence[ScanNeed],
    statistics: Mapping[tuple[str, str], TableStatistics],
    existing: Sequence[ExistingIndex],
    *,
    min_rows: int,
) -> list[IndexCandidate]:
    """Candidates for *needs*, one per distinct (table, columns, predicate), with every statement each
    serves. Tables under *min_rows* rows are fine to scan and get none; a candidate that is the leading
    part of a longer one on the same table and predicate is merged into it (the longer serves both)."""
    served: dict[tuple[str, str, tuple[str, ...], str | None], list[str]] = {}
    for need in (with_index_order(need, existing) for need in needs):
        table = statistics.get((need.schema, need.table))
        if table is not None and table.rows < min_rows:
            continue
        shapes = [(shape, None) for shape in _shapes(need, table)] + _partials(need, table)
        for columns, where in shapes:
            served.setdefault((need.schema, need.table, columns, where), []).append(need.statement)
    for key in sorted(served, key=lambda key: -len(key[2])):
        longer = next(
            (
                other
                for other in served
                if other != key
                and other[:2] == key[:2]
                and other[3] == key[3]
                and len(other[2]) > len(key[2])
                and other[2][: len(key[2])] == key[2]
            ),
            None,
        )
        if longer is not None:
            served[longer] += served.pop(key)
    candidates = [
        IndexCandidate(
            schema_name=schema,
            table=table_name,
            columns=columns,
            where=where,
            statements=tuple(dict.fromkeys(statements)),
        )
        for (schema, table_name, columns, where), statements in served.items()
    ]
    return [candidate for candidate in candidates if covered(candidate, existing) is None]
