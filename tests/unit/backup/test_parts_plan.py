"""The multi-part plan: size-balanced groups, sequences and large objects placed once, the coverage proof."""

from __future__ import annotations

from models.backup_plan import (
    LARGE_TABLE_BYTES,
    Listing,
    PlannedSequence,
    PlannedTable,
    coverage_problems,
    default_parallelism,
    parse_listing,
    plan_groups,
)

MB = 1_000_000


def table(name: str, size: int, oid: int, schema: str = "public") -> PlannedTable:
    return PlannedTable(schema, name, oid, size)


def test_groups_are_balanced_largest_first() -> None:
    tables = [table("a", 100 * MB, 1), table("b", 60 * MB, 2), table("c", 50 * MB, 3), table("d", 10 * MB, 4)]
    groups = plan_groups(tables, [], 2, large_objects=False)
    assert [[t.name for t in group.tables] for group in groups] == [["a", "d"], ["b", "c"]]
    assert [group.bytes for group in groups] == [110 * MB, 110 * MB]


def test_no_more_groups_than_tables_and_each_table_once() -> None:
    tables = [table(f"t{i}", i * MB, i) for i in range(1, 4)]
    groups = plan_groups(tables, [], 8, large_objects=True)
    assert len(groups) == 3
    placed = [t.oid for group in groups for t in group.tables]
    assert sorted(placed) == [1, 2, 3]
    assert [group.large_objects for group in groups] == [True, False, False]


def test_owned_sequences_follow_their_table_and_free_ones_go_to_the_first_group() -> None:
    tables = [table("big", 100 * MB, 1), table("small", 1 * MB, 2)]
    sequences = [
        PlannedSequence("public", "small_id_seq", 2),
        PlannedSequence("public", "free_seq"),
        PlannedSequence("public", "orphan_seq", 999),  # owned by a table that is not dumped
    ]
    groups = plan_groups(tables, sequences, 2, large_objects=False)
    assert [s.name for s in groups[1].sequences] == ["small_id_seq"]
    assert [s.name for s in groups[0].sequences] == ["free_seq", "orphan_seq"]
    # the owned one comes with its table; the others are selected by name
    assert groups[1].patterns() == ['"public"."small"']
    assert groups[0].patterns() == ['"public"."big"', '"public"."free_seq"', '"public"."orphan_seq"']


def test_patterns_are_exact_and_quoted() -> None:
    odd = table('We"ird Name', 1, 7, schema="S2")
    assert odd.pattern == '"S2"."We""ird Name"'


def test_default_parallelism_is_cores_at_most_large_tables() -> None:
    large = [table(f"l{i}", LARGE_TABLE_BYTES, i) for i in range(3)]
    assert default_parallelism(2, large) == 2
    assert default_parallelism(8, large) == 3
    assert default_parallelism(8, [table("small", 10, 1)]) == 1
    assert default_parallelism(8, []) == 1


LISTING = """;
; Archive created at 2026-12-01 10:00:00 UTC
;
2578; 0 16386 TABLE DATA public a dbops
2573; 0 16410 TABLE DATA s2 Odd Name dbops
2588; 0 0 SEQUENCE SET public a_id_seq dbops
2574; 2613 16408 BLOB METADATA - 16408 dbops
2575; 0 0 BLOBS - 16408 dbops
"""


def test_a_listing_is_read_by_oid_and_sequence() -> None:
    listing = parse_listing(LISTING)
    assert listing.table_oids == [16386, 16410]
    assert listing.sequences == ["public a_id_seq dbops"]
    assert listing.large_objects


def test_coverage_holds_when_every_table_and_sequence_is_in_exactly_one_part() -> None:
    tables = [table("a", 1, 16386), table("Odd Name", 1, 16410, schema="s2")]
    sequences = [PlannedSequence("public", "a_id_seq", 16386)]
    listings = {"pre-data": Listing([], [], False), "data-1": parse_listing(LISTING)}
    assert coverage_problems(tables, sequences, True, listings) == []


def test_coverage_fails_for_a_missing_a_doubled_and_an_unplanned_table() -> None:
    tables = [table("a", 1, 1), table("b", 1, 2)]
    listings = {"data-1": Listing([1, 3], [], False), "data-2": Listing([1], [], False)}
    problems = coverage_problems(tables, [], False, listings)
    assert "table public.a is in 2 parts" in problems
    assert "table public.b is in 0 parts" in problems
    assert any("not in the plan" in problem for problem in problems)


def test_coverage_fails_for_a_sequence_set_twice_or_large_objects_missing() -> None:
    sequences = [PlannedSequence("public", "s")]
    listings = {
        "data-1": Listing([], ["public s dbops"], False),
        "data-2": Listing([], ["public s dbops"], False),
    }
    problems = coverage_problems([], sequences, True, listings)
    assert "sequence public.s is set in 2 parts" in problems
    assert "the large objects are in 0 parts" in problems
