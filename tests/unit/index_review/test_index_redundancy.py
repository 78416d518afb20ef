"""PgHero's duplicate-index rule, case by case, on catalogue rows built by hand."""

from __future__ import annotations

import itertools
from dataclasses import replace

from tasks.index_review.catalog import IndexInfo, KeyColumn
from tasks.index_review.index_findings import covers, is_redundant_to, redundant_pairs

INT4_OPS, TEXT_OPS, TEXT_PATTERN_OPS = 1978, 3126, 4217
DEFAULT_COLLATION = 100
_oids = itertools.count(1000)
COLUMN_NUMBERS = {"university_id": 2, "code": 3, "name": 4, "status": 5}


def index(name: str, *columns: str, **changes: object) -> IndexInfo:
    built = IndexInfo(
        oid=next(_oids),
        schema="public",
        table="courses",
        name=name,
        method="btree",
        is_unique=False,
        is_primary=False,
        is_valid=True,
        is_ready=True,
        building=False,
        constraint_name=None,
        key_columns=tuple(KeyColumn(COLUMN_NUMBERS[c], TEXT_OPS, DEFAULT_COLLATION, 0) for c in columns),
        include_attnums=frozenset(),
        column_names=columns,
        expressions="",
        predicate="",
        definition=f"CREATE INDEX {name} ON public.courses USING btree ({', '.join(columns)})",
        size_bytes=8192,
        scans=0,
        last_scan=None,
    )
    return replace(built, **changes)  # type: ignore[arg-type]


def test_a_prefix_of_a_unique_index_is_redundant_to_it() -> None:
    single = index("ix_courses_university_id", "university_id")
    unique = index(
        "uq_courses_university_id_code",
        "university_id",
        "code",
        is_unique=True,
        constraint_name="uq_courses_university_id_code",
    )

    assert redundant_pairs([single, unique]) == [(single, unique)]


def test_the_longer_index_is_never_redundant_to_its_prefix() -> None:
    single, pair = index("a", "university_id"), index("b", "university_id", "code")

    assert covers(pair, single)
    assert not covers(single, pair)


def test_of_identical_plain_indexes_the_later_name_is_reported() -> None:
    first, second = index("ix_a", "code"), index("ix_b", "code")

    assert redundant_pairs([second, first]) == [(second, first)]


def test_a_unique_or_constraint_index_is_never_recommended_for_dropping() -> None:
    unique = index("ix_a", "code", is_unique=True)
    plain = index("ix_b", "code")
    primary = index("pk", "code", is_unique=True, is_primary=True, constraint_name="pk")

    assert redundant_pairs([unique, plain]) == [(plain, unique)]
    assert not is_redundant_to(unique, index("ix_c", "code", "name"))
    assert redundant_pairs([unique, primary]) == []


def test_a_different_operator_class_collation_or_order_is_not_a_duplicate() -> None:
    plain = index("ix_a", "code")
    pattern = replace(
        index("ix_b", "code"), key_columns=(KeyColumn(3, TEXT_PATTERN_OPS, DEFAULT_COLLATION, 0),)
    )
    collated = replace(index("ix_c", "code"), key_columns=(KeyColumn(3, TEXT_OPS, 950, 0),))
    descending = replace(index("ix_d", "code"), key_columns=(KeyColumn(3, TEXT_OPS, DEFAULT_COLLATION, 3),))

    assert redundant_pairs([plain, pattern, collated, descending]) == []


def test_a_different_predicate_expression_or_method_is_not_a_duplicate() -> None:
    plain = index("ix_a", "code")
    partial = index("ix_b", "code", "name", predicate="(is_active)")
    hashed = index("ix_c", "code", method="hash")
    expression = index("ix_d", "code", "name", expressions="lower((name)::text)")

    assert redundant_pairs([plain, partial, hashed, expression]) == []


def test_only_a_btree_answers_queries_on_a_prefix() -> None:
    narrow = index("ix_a", "code", method="gin")
    wide = index("ix_b", "code", "name", method="gin")
    twin = index("ix_c", "code", method="gin")

    assert not covers(wide, narrow)
    assert redundant_pairs([narrow, wide, twin]) == [(twin, narrow)]


def test_included_columns_must_be_covered_too() -> None:
    with_include = index("ix_a", "code", include_attnums=frozenset({COLUMN_NUMBERS["status"]}))
    longer = index("ix_b", "code", "name")
    covering_include = index("ix_c", "code", "status")

    assert not covers(longer, with_include)
    assert covers(covering_include, with_include)


def test_invalid_indexes_neither_cover_nor_are_covered() -> None:
    single, pair = index("ix_a", "code"), index("ix_b", "code", "name", is_valid=False)

    assert redundant_pairs([single, pair]) == []


def test_a_chain_reports_each_redundant_index_against_the_one_that_stays() -> None:
    one = index("ix_1", "university_id")
    two = index("ix_2", "university_id", "code")
    three = index("ix_3", "university_id", "code", "name")

    assert redundant_pairs([one, two, three]) == [(one, three), (two, three)]


def test_indexes_on_other_tables_never_match() -> None:
    here, there = index("ix_a", "code"), index("ix_b", "code", "name", table="universities")

    assert redundant_pairs([here, there]) == []
