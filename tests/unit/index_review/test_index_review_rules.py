"""The index review's pure rules: statement building, the bloat estimate, and the table thresholds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, text
from sqlalchemy.schema import Index

from models.index_review import Finding, FindingKind
from models.settings import Settings, load_settings
from tasks.index_review import statements
from tasks.index_review.bloat import RelationShape, bloat_findings, expected_index_pages, expected_table_pages
from tasks.index_review.catalog import TableInfo
from tasks.index_review.render import evidence_line, human_age, human_bytes
from tasks.index_review.table_findings import maintenance_findings, sequential_scan_findings

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


@pytest.fixture
def settings() -> Settings:
    return load_settings(_env_file=None)


def test_definitions_are_made_concurrent_once() -> None:
    definition = "CREATE UNIQUE INDEX uq_x ON public.t USING btree (a, b) WHERE (a > 0)"

    made = statements.concurrently(definition)

    assert made == "CREATE UNIQUE INDEX CONCURRENTLY uq_x ON public.t USING btree (a, b) WHERE (a > 0)"
    assert statements.concurrently(made) == made
    with pytest.raises(ValueError, match="not a CREATE INDEX"):
        statements.concurrently("DROP INDEX x")


def test_identifiers_are_quoted_only_when_needed() -> None:
    assert statements.drop_index("public", "ix_plain") == "DROP INDEX CONCURRENTLY IF EXISTS public.ix_plain"
    assert statements.drop_index("public", 'Odd "Name"') == (
        'DROP INDEX CONCURRENTLY IF EXISTS public."Odd ""Name"""'
    )
    assert statements.lock_timeout(2.5) == "SET lock_timeout = '2500ms'"


def test_a_model_index_keeps_its_predicate_when_built_concurrently() -> None:
    table = Table("t", MetaData(), Column("a", Integer))
    partial = Index("ix_t_a", table.c.a, postgresql_where=text("a > 0"))

    assert statements.create_model_index(partial) == "CREATE INDEX CONCURRENTLY ix_t_a ON t (a) WHERE a > 0"


def shape(**changes: object) -> RelationShape:
    base = RelationShape(
        schema="public",
        table="t",
        name="ix_t_a",
        pages=275,
        tuples=100_000,
        data_width=4,
        has_nulls=False,
        analysed=True,
        columns=0,
        fillfactor=90,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_fresh_int4_btree_is_estimated_at_its_real_size() -> None:
    # 100,000 int4 keys: a fresh build measures 276 pages on PostgreSQL 18 (leaves, root, metapage).
    assert expected_index_pages(shape(), 8192) == 275


def test_a_table_estimate_counts_header_alignment_and_line_pointers() -> None:
    # 28 bytes of data: 24 (aligned header) + 32 (aligned data) + 4 (line pointer) = 60 per row.
    table = shape(name=None, data_width=28, columns=3, fillfactor=100)

    assert expected_table_pages(table, 8192) == 100_000 // (8168 // 60) + 1


def test_bloat_is_reported_only_above_both_thresholds(settings: Settings) -> None:
    bloated = shape(pages=4 * 275)
    small = shape(name="ix_small", pages=4 * 275, tuples=25_000)
    tight = settings.model_copy(update={"review_bloat_min_mb": 1.0})

    findings = bloat_findings(8192, [bloated, small, shape(name="ix_fresh")], [], tight)

    assert [finding.id for finding in findings] == ["index-bloat:ix_t_a", "index-bloat:ix_small"]
    assert findings[0].evidence["bloat_percent"] == 75.0
    assert bloat_findings(8192, [bloated], [], settings) == []  # 6.4 MiB is under the default 10 MiB


def test_an_unanalysed_relation_is_never_estimated(settings: Settings) -> None:
    loose = settings.model_copy(update={"review_bloat_min_mb": 0.0})

    assert bloat_findings(8192, [shape(pages=10_000, analysed=False)], [], loose) == []


def test_table_bloat_needs_a_maintenance_window(settings: Settings) -> None:
    loose = settings.model_copy(update={"review_bloat_min_mb": 0.0})
    table = shape(name=None, pages=10_000, data_width=28, columns=3, fillfactor=100)

    (finding,) = bloat_findings(8192, [], [table], loose)

    assert finding.kind is FindingKind.TABLE_BLOAT
    assert not finding.online
    assert not finding.applicable
    assert finding.sql[-1] == "VACUUM (FULL, ANALYZE) public.t"


def table(**changes: object) -> TableInfo:
    base = TableInfo(
        oid=1,
        schema="public",
        name="t",
        estimated_rows=50_000,
        size_bytes=2**24,
        live_rows=50_000,
        dead_rows=0,
        modified_since_analyze=0,
        sequential_scans=0,
        sequential_rows_read=0,
        index_scans=0,
        last_vacuum=None,
        last_analyze=NOW - timedelta(hours=1),
        last_autoanalyze=None,
        last_sequential_scan=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_sequential_scans_are_reported_below_the_index_share_on_large_tables(settings: Settings) -> None:
    heavy = table(name="heavy", sequential_scans=6, index_scans=94)
    fine = table(name="fine", sequential_scans=5, index_scans=95)
    small = table(name="small", live_rows=9_999, sequential_scans=100)

    findings = sequential_scan_findings([heavy, fine, small, table(name="idle")], NOW, settings)

    assert [finding.id for finding in findings] == ["seq-scans:heavy"]
    assert findings[0].evidence["index_use_percent"] == 94.0
    assert not findings[0].sql


def test_dead_rows_call_for_vacuum_which_analyses_too(settings: Settings) -> None:
    dead = table(dead_rows=10_000, modified_since_analyze=10_000, last_analyze=None)
    few = table(name="few", live_rows=1_000, dead_rows=999)

    findings = maintenance_findings([dead, few], NOW, settings)

    assert [(finding.id, finding.sql[-1]) for finding in findings] == [
        ("vacuum:t", "VACUUM (ANALYZE) public.t")
    ]


def test_stale_statistics_call_for_analyze(settings: Settings) -> None:
    never = table(name="never", modified_since_analyze=5_000, last_analyze=None)
    old = table(name="old", modified_since_analyze=5_000, last_analyze=NOW - timedelta(days=8))
    recent = table(name="recent", modified_since_analyze=5_000, last_analyze=NOW - timedelta(days=1))
    quiet = table(name="quiet", modified_since_analyze=999, last_analyze=None)

    findings = maintenance_findings([never, old, recent, quiet], NOW, settings)

    assert [finding.id for finding in findings] == ["analyze:never", "analyze:old"]
    assert findings[0].evidence["last_analyze_age_days"] is None
    assert findings[1].evidence["last_analyze_age_days"] == pytest.approx(8.0)


def test_evidence_reads_as_one_line() -> None:
    finding = Finding(
        id="unused:ix",
        kind=FindingKind.UNUSED,
        table="t",
        index="ix",
        recommendation="drop ix",
        evidence={
            "scans": 0,
            "size_bytes": 3 * 2**20,
            "statistics_age_days": 0.5,
            "columns": ["a", "b"],
            "definition": "CREATE INDEX ix ON t (a, b)",
            "statistics_since": None,
        },
    )

    assert evidence_line(finding) == "scans=0 size=3.0 MiB statistics_age=12.0 hours columns=a,b"
    assert human_bytes(512) == "512 B"
    assert human_age(None) == "an unknown time"
    assert human_age(3.26) == "3.3 days"
