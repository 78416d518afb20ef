"""Candidates from the scans' needs, their write overhead, the SQL text around them, and findings."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import QueriesFileError
from models.index_review import FindingKind
from models.settings import load_settings
from models.workload import IndexCandidate, StatementCost, WorkloadStatement
from tasks.index_review.workload.candidates import (
    ColumnStatistics,
    ExistingIndex,
    TableStatistics,
    build_candidates,
)
from tasks.index_review.workload.expressions import ColumnRef, SortKey, comparison
from tasks.index_review.workload.findings import candidate_from_finding, workload_finding
from tasks.index_review.workload.needs import ScanNeed
from tasks.index_review.workload.overhead import ROW_WRITE_COST, TableWrites, write_overhead
from tasks.index_review.workload.source import read_queries_file
from tasks.index_review.workload.sql_text import advisable, split_statements, updated_columns

STATISTICS = {
    ("public", "t"): TableStatistics(
        rows=100_000,
        columns={
            "kind": ColumnStatistics(n_distinct=6, avg_width=8),
            "action": ColumnStatistics(n_distinct=40, avg_width=10),
            "user_id": ColumnStatistics(n_distinct=-0.2, avg_width=16),
            "status": ColumnStatistics(n_distinct=4, avg_width=8),
            "created_at": ColumnStatistics(n_distinct=-1, avg_width=8),
            "payload": ColumnStatistics(n_distinct=-1, avg_width=200),
        },
    )
}


def need(statement: str = "q:1", **fields: object) -> ScanNeed:
    values: dict[str, object] = {
        "statement": statement,
        "schema": "public",
        "table": "t",
        "node_type": "Seq Scan",
        "equality": (),
        "ranges": (),
        "join_keys": (),
        "sort": (),
        "constants": (),
    }
    values.update(fields)
    return ScanNeed(**values)  # type: ignore[arg-type]


def descending(column: str) -> SortKey:
    return SortKey(ColumnRef("t", column), descending=True, nulls_first=True)


def columns_of(candidates: list[IndexCandidate]) -> list[tuple[str, ...]]:
    return [candidate.columns for candidate in candidates]


def test_equality_columns_come_most_selective_first_then_one_range_column() -> None:
    found = build_candidates(
        [need(equality=("kind", "action", "user_id"), ranges=("created_at",))], STATISTICS, [], min_rows=1
    )

    assert columns_of(found) == [("user_id", "action", "kind", "created_at")]
    assert found[0].statements == ("q:1",)


def test_sort_columns_follow_equality_columns_when_a_limit_stops_the_scan() -> None:
    found = build_candidates(
        [need(equality=("action",), ranges=("user_id",), sort=(descending("created_at"),))],
        STATISTICS,
        [],
        min_rows=1,
    )

    assert columns_of(found) == [("action", "user_id"), ("action", "created_at")]


def test_mixed_sort_directions_or_nulls_give_no_sort_candidate() -> None:
    mixed = (descending("created_at"), SortKey(ColumnRef("t", "action"), False, False))
    nulls_last = (SortKey(ColumnRef("t", "created_at"), True, False),)

    for sort in (mixed, nulls_last):
        found = build_candidates([need(equality=("kind",), sort=sort)], STATISTICS, [], min_rows=1)
        assert columns_of(found) == [("kind",)]


def test_a_constant_on_a_low_cardinality_column_adds_a_partial_candidate() -> None:
    status = comparison("((t.status)::text = 'pending'::text)")
    assert status is not None

    found = build_candidates(
        [need(equality=("status", "action"), constants=(status,))], STATISTICS, [], min_rows=1
    )

    assert [(c.columns, c.where) for c in found] == [
        (("action", "status"), None),
        (("action",), "status = 'pending'::text"),
    ]
    assert found[1].name == "ix_t_action_partial"


def test_candidates_of_several_statements_merge_and_a_prefix_joins_the_longer_one() -> None:
    found = build_candidates(
        [
            need("q:1", equality=("action",)),
            need("q:2", equality=("action",), ranges=("created_at",)),
            need("q:3", equality=("action",), ranges=("created_at",)),
        ],
        STATISTICS,
        [],
        min_rows=1,
    )

    assert [(c.columns, c.statements) for c in found] == [(("action", "created_at"), ("q:2", "q:3", "q:1"))]


def test_what_an_existing_index_covers_and_small_tables_get_no_candidate() -> None:
    needs = [need(equality=("action",), ranges=("created_at",))]
    existing = [ExistingIndex("public", "t", "ix_t_x", ("action", "created_at", "id"), "", usable=True)]
    invalid = [ExistingIndex("public", "t", "ix_t_x", ("action", "created_at"), "", usable=False)]
    partial = [ExistingIndex("public", "t", "ix_t_x", ("action", "created_at"), "(id > 5)", usable=True)]

    assert build_candidates(needs, STATISTICS, existing, min_rows=1) == []
    assert columns_of(build_candidates(needs, STATISTICS, invalid, min_rows=1)) == [("action", "created_at")]
    assert columns_of(build_candidates(needs, STATISTICS, partial, min_rows=1)) == [("action", "created_at")]
    assert build_candidates(needs, STATISTICS, [], min_rows=1_000_000) == []


def test_an_index_scan_read_in_order_lends_its_columns_as_the_sort() -> None:
    ordered = need(node_type="Index Scan", equality=("action",), ordered_by=("ix_t_created_at", True))
    existing = [ExistingIndex("public", "t", "ix_t_created_at", ("created_at",), "", usable=True)]

    assert columns_of(build_candidates([ordered], STATISTICS, existing, min_rows=1)) == [
        ("action", "created_at")
    ]


def test_write_overhead_grows_with_the_writes_and_the_index_width() -> None:
    columns = STATISTICS[("public", "t")].columns
    quiet = TableWrites(inserts=0, updates=0, hot_updates=0, seconds=100)
    busy = TableWrites(inserts=1_000, updates=0, hot_updates=0, seconds=100)
    hot = TableWrites(inserts=0, updates=500, hot_updates=500, seconds=100)

    assert write_overhead(("action",), columns, quiet, 100) == 0
    narrow = write_overhead(("action",), columns, busy, 100)
    wide = write_overhead(("action", "user_id", "created_at"), columns, busy, 100)
    assert 0 < narrow < wide < 1_000 * ROW_WRITE_COST
    assert write_overhead(("action",), columns, busy, 200) == pytest.approx(2 * narrow)
    assert write_overhead(("action",), columns, hot, 100) == 500 * ROW_WRITE_COST


def test_a_queries_file_is_split_outside_quotes_comments_and_dollar_quotes() -> None:
    text = """
    -- calls: 25
    SELECT * FROM t WHERE a = 'x;y' AND b = $1;
    /* a ; comment /* nested ; */ */ SELECT $$;$$ FROM t WHERE "we;ird" = 1;
    SET work_mem = '64MB';
    SELECT 1
    """

    found = split_statements(text)

    assert [(s.query, s.calls, s.line) for s in found] == [
        ("SELECT * FROM t WHERE a = 'x;y' AND b = $1", 25, 3),
        ('SELECT $$;$$ FROM t WHERE "we;ird" = 1', 1, 4),
        ("SET work_mem = '64MB'", 1, 5),
        ("SELECT 1", 1, 6),
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT * FROM t WHERE a = $1", True),
        ("with x as (select 1) select * from t join x on true", True),
        ("UPDATE t SET a = $1 WHERE id = $2", True),
        ("INSERT INTO t SELECT * FROM u WHERE a = $1", True),
        ("INSERT INTO t (a) VALUES ($1) ON CONFLICT (a) DO UPDATE SET a = $2 WHERE t.a > 0", False),
        ("SELECT * FROM t", False),
        ("EXPLAIN SELECT * FROM t WHERE a = 1", False),
        ("SET statement_timeout = $1", False),
        ("CREATE INDEX ON t (a)", False),
        ("SELECT n.nspname FROM pg_namespace AS n WHERE n.oid = $1", False),
        ("SELECT version_num FROM alembic_version WHERE true", False),
    ],
)
def test_only_statements_an_index_can_serve_are_advisable(query: str, expected: bool) -> None:
    assert advisable(query) is expected


def test_a_queries_file_without_a_usable_statement_or_unreadable_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sql"
    empty.write_text("SET work_mem = '1GB';\nBEGIN;\n")

    with pytest.raises(QueriesFileError, match="holds no statement an index could serve"):
        read_queries_file(empty)
    with pytest.raises(QueriesFileError, match="cannot read the queries file"):
        read_queries_file(tmp_path / "missing.sql")


def test_a_finding_carries_the_sql_revision_and_model_line_and_reads_back() -> None:
    candidate = IndexCandidate(
        schema_name="public",
        table="t",
        columns=("action", "created_at"),
        where="status = 'pending'::text",
        statements=("q:1",),
        costs=(
            StatementCost(statement="q:1", calls=10, before=100.0, after=5.0),
            StatementCost(statement="q:2", calls=3, before=50.0, after=50.0),
        ),
    )
    workload = {
        "q:1": WorkloadStatement(key="q:1", query="SELECT * FROM t WHERE action = $1", calls=10),
        "q:2": WorkloadStatement(key="q:2", query="SELECT * FROM t WHERE id = $1", calls=3),
    }

    finding = workload_finding(candidate, workload, load_settings(_env_file=None))

    assert finding.id == "workload-index:ix_t_action_created_at_partial"
    assert finding.kind is FindingKind.WORKLOAD_INDEX
    assert finding.sql[1] == (
        "CREATE INDEX CONCURRENTLY ix_t_action_created_at_partial ON public.t (action, created_at) "
        "WHERE status = 'pending'::text"
    )
    assert finding.undo_sql[1] == "DROP INDEX CONCURRENTLY IF EXISTS public.ix_t_action_created_at_partial"
    assert (finding.estimated_cost_before, finding.estimated_cost_after) == (1000.0, 50.0)
    assert [row["key"] for row in finding.statements or ()] == ["q:1"]
    assert finding.model == (
        "Index('ix_t_action_created_at_partial', 'action', 'created_at', "
        "postgresql_where=text(\"status = 'pending'::text\")),"
    )
    assert finding.alembic is not None
    assert "op.get_context().autocommit_block()" in finding.alembic
    assert "postgresql_concurrently=True" in finding.alembic
    compile(finding.alembic, "revision", "exec")
    assert candidate_from_finding(finding, "public") == candidate.model_copy(update={"costs": ()})


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("UPDATE analytics_events SET properties = $1", ("analytics_events", frozenset({"properties"}))),
        (
            "/* app */ update public.applications a set status = $1, updated_at = now() where id = $2",
            ("applications", frozenset({"status", "updated_at"})),
        ),
        (
            'UPDATE t SET (a, b) = ($1, f($2, $3)), "C" = 1 FROM u WHERE t.id = u.id',
            ("t", frozenset({"a", "b", "C"})),
        ),
        ("UPDATE t SET a = (SELECT max(x) FROM y WHERE z = 1) RETURNING *", ("t", frozenset({"a"}))),
        ("INSERT INTO t (a) VALUES ($1) ON CONFLICT (a) DO UPDATE SET b = $2", ("t", None)),
        ("UPDATE t SET a[1] = $1, p.x = $2", ("t", frozenset({"a", "p"}))),
        ("UPDATE t SET f(a) = $1", ("t", None)),
        ("SELECT * FROM t WHERE a = $1 FOR UPDATE", None),
    ],
)
def test_the_columns_an_update_assigns_are_read_or_said_to_be_unknown(
    query: str, expected: tuple[str, frozenset[str] | None] | None
) -> None:
    assert updated_columns(query) == expected


def test_an_index_on_columns_no_update_assigns_breaks_no_hot_update() -> None:
    columns = STATISTICS[("public", "t")].columns
    hot = TableWrites(inserts=0, updates=500, hot_updates=500, seconds=100)

    assert write_overhead(("action",), columns, hot, 100, frozenset({"payload"})) == 0
    assert write_overhead(("action",), columns, hot, 100, frozenset({"action"})) == 500 * ROW_WRITE_COST
    assert write_overhead(("action",), columns, hot, 100, None) == 500 * ROW_WRITE_COST
