"""What a statement's generic plan asks of an index: the scans that read more than they keep, and the
columns each filters, joins and sorts on.

A plan is read as ``EXPLAIN (VERBOSE, FORMAT JSON)`` prints it: every node a ``Node Type``, scans a
``Relation Name``, ``Schema`` and ``Alias``, and columns qualified by the alias. A generic plan has no
``Rows Removed by Filter``, so a poorly selective index scan shows itself by the ``Filter`` left on top
of its ``Index Cond``, or by a ``Sort`` it did not spare, rather than by counts. (Its estimated rows
against the table's say nothing more: without a ``Filter`` the scan already uses every condition the
statement puts on the table, and no other index could return fewer rows.)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.workload import ParameterUse
from tasks.index_review.workload.expressions import (
    EQUALITY,
    LIKE,
    RANGE_OPERATORS,
    ColumnRef,
    Comparison,
    SortKey,
    comparisons,
    sort_key,
)

SCANS = frozenset({"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan"})
#: Nodes that pass rows on in the order they got them: a Sort above them still sorts the scan's rows.
_PASS_THROUGH = frozenset({"Gather", "Gather Merge", "Materialize", "Memoize", "Result", "Hash"})
_SORTS = frozenset({"Sort", "Incremental Sort"})
_JOIN_CONDITIONS = ("Hash Cond", "Merge Cond", "Join Filter")

Node = Mapping[str, Any]


@dataclass(frozen=True)
class ScanNeed:
    """One scan of *table* an index could serve better, with what it filters, joins and sorts on."""

    statement: str
    schema: str
    table: str
    node_type: str
    equality: tuple[str, ...]
    ranges: tuple[str, ...]
    join_keys: tuple[str, ...]
    sort: tuple[SortKey, ...]  # only when a Limit above the Sort lets an ordered scan stop early
    constants: tuple[Comparison, ...]
    #: An index scan that gives the order a Limit wants, filtering as it goes: (index, backward). Its
    #: columns are the sort keys, which the plan does not print.
    ordered_by: tuple[str, bool] | None = None


@dataclass(frozen=True)
class _Scan:
    node: Node
    ancestors: tuple[Node, ...]

    @property
    def alias(self) -> str:
        return str(self.node.get("Alias") or self.node["Relation Name"])

    def own(self, column: ColumnRef) -> bool:
        return column.qualifier in {None, self.alias}


def root(plan: Any) -> Node:
    """The top node of an ``EXPLAIN (FORMAT JSON)`` result (a one-element list of ``{"Plan": ...}``)."""
    document = plan[0] if isinstance(plan, list) else plan
    return document.get("Plan", document)  # type: ignore[no-any-return]


def total_cost(plan: Any) -> float:
    return float(root(plan)["Total Cost"])


def _scans(node: Node, ancestors: tuple[Node, ...] = ()) -> Iterator[_Scan]:
    if node.get("Node Type") in SCANS and "Relation Name" in node:
        yield _Scan(node, ancestors)
    for child in node.get("Plans", ()):
        yield from _scans(child, (node, *ancestors))


def tables(plan: Any) -> frozenset[tuple[str, str]]:
    """(schema, table) of every relation the plan scans."""

    def walk(node: Node) -> Iterator[tuple[str, str]]:
        if "Relation Name" in node:
            yield str(node.get("Schema", "")), str(node["Relation Name"])
        for child in node.get("Plans", ()):
            yield from walk(child)

    return frozenset(walk(root(plan)))


def _conditions(scan: _Scan) -> list[Comparison]:
    texts = [scan.node.get(key) for key in ("Index Cond", "Recheck Cond", "Filter")]
    return [found for text in texts for found in comparisons(text) if scan.own(found.column)]


def _join_keys(scan: _Scan, own_conditions: Sequence[Comparison]) -> list[str]:
    """Columns of this scan compared with another relation's: in a parametrised index scan's
    condition, or in a join above it."""
    found = [c.column.name for c in own_conditions if c.other is not None and not scan.own(c.other)]
    for ancestor in scan.ancestors:
        for key in _JOIN_CONDITIONS:
            for join in comparisons(ancestor.get(key)):
                if join.other is None:
                    continue
                if scan.own(join.column) and not scan.own(join.other):
                    found.append(join.column.name)
                elif scan.own(join.other) and not scan.own(join.column):
                    found.append(join.other.name)
    return _unique(found)


def _sort_above(scan: _Scan) -> tuple[tuple[SortKey, ...], bool]:
    """The sort keys of a Sort directly above the scan (through nodes that keep the order), and
    whether a Limit above that Sort lets an ordered scan stop early."""
    above = iter(scan.ancestors)
    node = next((n for n in above if n.get("Node Type") not in _PASS_THROUGH), None)
    if node is None or node.get("Node Type") not in _SORTS:
        return (), False
    keys = [sort_key(text) for text in node.get("Sort Key", ())]
    if not keys or any(key is None or not scan.own(key.column) for key in keys):
        return (), False
    limit = next((n for n in above if n.get("Node Type") not in _PASS_THROUGH), None)
    return tuple(key for key in keys if key is not None), bool(limit and limit.get("Node Type") == "Limit")


def _ordered_by(scan: _Scan) -> tuple[str, bool] | None:
    """(index, backward) of an index scan read in order under a Limit: the order is what it is for."""
    if scan.node["Node Type"] not in {"Index Scan", "Index Only Scan"} or "Index Name" not in scan.node:
        return None
    above = next((n for n in scan.ancestors if n.get("Node Type") not in _PASS_THROUGH), None)
    if above is None or above.get("Node Type") != "Limit":
        return None
    return str(scan.node["Index Name"]), scan.node.get("Scan Direction") == "Backward"


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def scan_needs(statement: str, plan: Any) -> list[ScanNeed]:
    """Every scan in *plan* an index could serve better: each sequential scan, each index or bitmap
    scan that leaves a ``Filter`` on top, and each scan whose rows a ``Sort`` then a ``Limit`` order."""
    needs = []
    for scan in _scans(root(plan)):
        own = _conditions(scan)
        sort, limited = _sort_above(scan)
        filtered = bool(comparisons(scan.node.get("Filter")))
        if scan.node["Node Type"] != "Seq Scan" and not filtered and not (sort and limited):
            continue
        values = [c for c in own if c.other is None]
        equality = [c.column.name for c in values if c.operator == EQUALITY]
        ranges = [c.column.name for c in values if c.operator in RANGE_OPERATORS or c.operator == LIKE]
        constants = tuple({c.column.name: c for c in values if c.is_constant_test}.values())
        needs.append(
            ScanNeed(
                statement=statement,
                schema=str(scan.node.get("Schema", "")),
                table=str(scan.node["Relation Name"]),
                node_type=str(scan.node["Node Type"]),
                equality=tuple(_unique(equality)),
                ranges=tuple(column for column in _unique(ranges) if column not in equality),
                join_keys=tuple(column for column in _join_keys(scan, own) if column not in equality),
                sort=sort if limited else (),
                constants=constants,
                ordered_by=_ordered_by(scan) if filtered else None,
            )
        )
    return needs


def parameter_uses(plan: Any) -> list[ParameterUse]:
    """Which column each ``$n`` of the statement is compared with, wherever the plan shows it, so real
    values can be sampled for it; a parameter compared with no plain column is left out."""
    uses: dict[int, ParameterUse] = {}
    for scan in _scans(root(plan)):
        for found in _conditions(scan):
            if found.parameter is not None and found.parameter not in uses:
                uses[found.parameter] = ParameterUse(
                    position=found.parameter,
                    schema_name=str(scan.node.get("Schema", "")),
                    table=str(scan.node["Relation Name"]),
                    column=found.column.name,
                )
    return [uses[position] for position in sorted(uses)]
