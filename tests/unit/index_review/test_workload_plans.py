"""Reading plans: the conditions PostgreSQL prints, and what each scan asks of an index."""

from __future__ import annotations

from typing import Any

import pytest

from models.workload import ParameterUse
from tasks.index_review.workload.expressions import (
    ColumnRef,
    comparison,
    comparisons,
    sort_key,
    split_top_level,
)
from tasks.index_review.workload.needs import parameter_uses, scan_needs, tables, total_cost


@pytest.mark.parametrize(
    ("text", "column", "operator", "parameter", "constant"),
    [
        ("((t.status)::text = 'open'::text)", "status", "=", None, "'open'::text"),
        ("(t.created_at >= $1)", "created_at", ">=", 1, None),
        ("($2 < t.created_at)", "created_at", ">", 2, None),
        ("((action)::text = ($3)::text)", "action", "=", 3, None),
        ("(t.n = 42)", "n", "=", None, "42"),
        ('(t."Odd Name" <= $1)', "Odd Name", "<=", 1, None),
        ("((t.name)::text ~~ 'abc%'::text)", "name", "~~", None, "'abc%'::text"),
    ],
)
def test_a_comparison_is_read_with_its_column_operator_and_value(
    text: str, column: str, operator: str, parameter: int | None, constant: str | None
) -> None:
    found = comparison(text)

    assert found is not None
    assert (found.column.name, found.operator, found.parameter, found.constant) == (
        column,
        operator,
        parameter,
        constant,
    )


@pytest.mark.parametrize(
    "text",
    [
        "((t.name)::text ~~ '%abc'::text)",  # a leading wildcard: no range
        "((t.name)::text ~~ $1)",  # a pattern not known when planning
        "(lower((t.name)::text) = $1)",  # an expression, not a column
        "(t.a <> $1)",
        "((t.a = $1) OR (t.b = $2))",
        "(t.a = (t.b + 1))",
    ],
)
def test_what_an_index_cannot_serve_reads_as_nothing(text: str) -> None:
    assert comparison(text) is None


def test_a_condition_is_split_at_its_top_level_and_only() -> None:
    condition = "(((t.status)::text = 'a AND b'::text) AND (t.created_at >= $2) AND (t.deleted_at IS NULL))"

    found = comparisons(condition)

    assert [(c.column.name, c.operator) for c in found] == [
        ("status", "="),
        ("created_at", ">="),
        ("deleted_at", "IS NULL"),
    ]
    assert [c.is_constant_test for c in found] == [True, False, True]
    assert comparisons("((t.a = $1) OR (t.b = $2))") == []
    assert split_top_level("f(a, b), c", ",") == ["f(a, b)", "c"]


def test_an_in_list_is_equality_and_a_join_condition_names_both_columns() -> None:
    many = comparison("(t.kind = ANY ($1))")
    join = comparison("(a.user_id = u.id)")

    assert many is not None
    assert (many.operator, many.parameter, many.many) == ("=", 1, True)
    assert not many.is_constant_test
    assert join is not None
    assert (join.column, join.other) == (ColumnRef("a", "user_id"), ColumnRef("u", "id"))


def test_sort_keys_keep_their_direction_and_nulls() -> None:
    descending = sort_key("t.created_at DESC")
    nulls_last = sort_key("t.created_at DESC NULLS LAST")
    ascending = sort_key("t.id")

    assert descending is not None
    assert descending.descending
    assert descending.default_nulls
    assert nulls_last is not None
    assert not nulls_last.default_nulls
    assert ascending is not None
    assert not ascending.descending
    assert ascending.default_nulls
    assert sort_key("lower((t.name)::text)") is None


def _scan(node_type: str, table: str, **fields: Any) -> dict[str, Any]:
    return {"Node Type": node_type, "Relation Name": table, "Schema": "public", "Alias": table, **fields}


def _plan(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Plan": node}]


def test_a_sequential_scan_under_a_sort_and_a_limit_asks_for_equality_range_and_sort_columns() -> None:
    scan = _scan(
        "Seq Scan",
        "audit_logs",
        Filter="(((audit_logs.action)::text = ($1)::text) AND (audit_logs.created_at >= $2))",
    )
    plan = _plan(
        {
            "Node Type": "Limit",
            "Total Cost": 12.5,
            "Plans": [{"Node Type": "Sort", "Sort Key": ["audit_logs.id DESC"], "Plans": [scan]}],
        }
    )

    [need] = scan_needs("q:1", plan)

    assert (need.schema, need.table, need.equality, need.ranges) == (
        "public",
        "audit_logs",
        ("action",),
        ("created_at",),
    )
    assert [key.column.name for key in need.sort] == ["id"]
    assert total_cost(plan) == 12.5
    assert tables(plan) == {("public", "audit_logs")}
    assert parameter_uses(plan) == [
        ParameterUse(position=1, schema_name="public", table="audit_logs", column="action"),
        ParameterUse(position=2, schema_name="public", table="audit_logs", column="created_at"),
    ]


def test_a_sort_without_a_limit_above_it_asks_for_no_sort_columns() -> None:
    scan = _scan("Seq Scan", "t", Filter="(t.a = $1)")
    plan = _plan({"Node Type": "Sort", "Sort Key": ["t.b"], "Plans": [scan]})

    [need] = scan_needs("q:1", plan)

    assert need.sort == ()


def test_a_selective_index_scan_asks_for_nothing_and_one_leaving_a_filter_does() -> None:
    served = _plan(_scan("Index Scan", "t", **{"Index Name": "ix_t_a", "Index Cond": "(t.a = $1)"}))
    filtered = _plan(
        {
            "Node Type": "Limit",
            "Plans": [
                _scan(
                    "Index Scan",
                    "t",
                    **{"Index Name": "ix_t_b", "Scan Direction": "Backward", "Filter": "(t.a = $1)"},
                )
            ],
        }
    )

    assert scan_needs("q:1", served) == []
    [need] = scan_needs("q:2", filtered)
    assert need.equality == ("a",)
    assert need.ordered_by == ("ix_t_b", True)


def test_a_hash_join_gives_the_scanned_side_its_join_key() -> None:
    plan = _plan(
        {
            "Node Type": "Hash Join",
            "Hash Cond": "(e.user_id = u.id)",
            "Plans": [
                {**_scan("Seq Scan", "events", Filter="((e.kind)::text = 'x'::text)"), "Alias": "e"},
                {"Node Type": "Hash", "Plans": [{**_scan("Seq Scan", "users"), "Alias": "u"}]},
            ],
        }
    )

    needs = {need.table: need for need in scan_needs("q:1", plan)}

    assert needs["events"].join_keys == ("user_id",)
    assert needs["events"].equality == ("kind",)
    assert needs["users"].join_keys == ("id",)


def test_a_parallel_scan_sorted_under_a_gather_merge_and_a_limit_asks_for_the_sort() -> None:
    scan = {**_scan("Seq Scan", "t", Filter="(t.a = $1)"), "Parallel Aware": True}
    plan = _plan(
        {
            "Node Type": "Limit",
            "Plans": [
                {
                    "Node Type": "Gather Merge",
                    "Plans": [{"Node Type": "Sort", "Sort Key": ["t.b DESC"], "Plans": [scan]}],
                }
            ],
        }
    )

    [need] = scan_needs("q:1", plan)

    assert [(key.column.name, key.descending) for key in need.sort] == [("b", True)]


def test_a_sort_on_another_relations_column_asks_for_no_sort() -> None:
    plan = _plan(
        {
            "Node Type": "Limit",
            "Plans": [
                {
                    "Node Type": "Sort",
                    "Sort Key": ["t.b", "u.c"],
                    "Plans": [_scan("Seq Scan", "t", Filter="(t.a = $1)")],
                }
            ],
        }
    )

    [need] = scan_needs("q:1", plan)

    assert need.sort == ()
