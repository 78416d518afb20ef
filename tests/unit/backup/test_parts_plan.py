"""The multi-part plan: size-balanced groups, never an empty one, sequences and large objects placed once;
the coverage proof against a single pg_dump's table of contents."""

from __future__ import annotations

from models.backup_plan import (
    LARGE_TABLE_BYTES,
    PlannedSequence,
    PlannedTable,
    coverage_problems,
    default_parallelism,
    plan_groups,
    toc_entries,
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


def test_tables_never_analysed_are_dealt_out_so_no_group_is_empty() -> None:
    # relpages is 0 until a table is analysed: by size alone every table would join the first group,
    # and the other groups' pg_dump --data-only, without a -t, would dump everything.
    tables = [table(f"t{i}", 0, i) for i in range(1, 8)]
    groups = plan_groups(tables, [], 4, large_objects=False)
    assert len(groups) == 4
    assert [len(group.tables) for group in groups] == [2, 2, 2, 1]
    assert all(group.patterns() for group in groups)


def test_partitioned_parents_come_last_and_take_their_identity_sequence() -> None:
    parent = PlannedTable("public", "events", 10, 0, partitioned=True)
    partitions = [table("events_a", 0, 11), table("events_b", 0, 12)]
    identity = PlannedSequence("public", "events_id_seq", 10)
    groups = plan_groups([parent, *partitions], [identity], 4, large_objects=False)
    assert len(groups) == 2  # as many groups as tables with rows, not more
    assert all(group.row_tables for group in groups)
    holder = next(group for group in groups if parent in group.tables)
    assert holder.sequences == [identity]
    assert '"public"."events"' in holder.patterns()
    assert '"public"."events_id_seq"' not in holder.patterns()  # pg_dump ignores -t for it anyway
    assert parent not in holder.row_tables


def test_extension_configuration_sequences_are_named_even_when_owned() -> None:
    config = PlannedTable("cron", "job", 20, 8192)
    tables = [config, table("other", 8192, 21)]
    owned_config = PlannedSequence("cron", "jobid_seq", 20, extension_config=True)
    groups = plan_groups(tables, [owned_config], 2, large_objects=False)
    holder = next(group for group in groups if config in group.tables)
    assert '"cron"."jobid_seq"' in holder.patterns()


WHOLE = """;
; Archive created at 2026-12-01 10:00:00 UTC
;
2; 3079 16387 EXTENSION - pg_partman
222; 1259 16539 TABLE public ev dbops
4651; 0 16391 TABLE DATA partman part_config dbops
5542; 0 18252 TABLE DATA public Odd Name dbops
5560; 0 0 SEQUENCE SET public ev_id_seq dbops
5548; 2613 18274 BLOB - 18274 dbops
5549; 0 0 BLOBS - BLOBS
5545; 0 18276 MATERIALIZED VIEW DATA public mv dbops
"""


def test_a_listing_is_read_without_its_dump_ids() -> None:
    entries = toc_entries(WHOLE)
    assert entries[0] == "3079 16387 EXTENSION - pg_partman"
    assert "0 18252 TABLE DATA public Odd Name dbops" in entries
    assert len(entries) == 8


def parts_of(*lines: list[int]) -> dict[str, list[str]]:
    entries = toc_entries(WHOLE)
    return {f"part-{index}": [entries[line] for line in chosen] for index, chosen in enumerate(lines)}


def test_coverage_holds_when_every_entry_of_pg_dump_is_in_exactly_one_part() -> None:
    assert coverage_problems(toc_entries(WHOLE), parts_of([0, 1], [2, 4, 5, 6], [3], [7])) == []


def test_coverage_names_entries_missing_doubled_or_unknown_to_pg_dump() -> None:
    selected = toc_entries(WHOLE)
    parts = parts_of([0, 1], [4, 5, 6], [3, 4], [7])  # part_config's rows lost, ev_id_seq set twice
    parts["part-3"].append("0 99999 TABLE DATA public late_arrival dbops")
    problems = coverage_problems(selected, parts)
    assert "TABLE DATA partman part_config dbops is in no part" in problems
    assert "SEQUENCE SET public ev_id_seq dbops is in part-1, part-2" in problems
    assert "TABLE DATA public late_arrival dbops is in part-3 but not in pg_dump's selection" in problems
    assert len(problems) == 3


def test_a_data_part_is_never_dumped_without_tables() -> None:
    # pg_dump --data-only without -t dumps every table: a plan with a group without rows is refused.
    import pytest

    from models.backup_plan import DataGroup
    from models.errors import BackupError
    from models.settings import load_settings
    from tasks.backup.parts import part_specs
    from tasks.backup.plan import BackupPlan

    only = table("a", 1, 1)
    parent = PlannedTable("public", "p", 2, 0, partitioned=True)
    groups = [DataGroup(tables=[only]), DataGroup(tables=[parent])]
    plan = BackupPlan([only, parent], [], False, groups, "public", ["a", "p"])
    with pytest.raises(BackupError, match=r"a data part \(data-2\) without tables"):
        part_specs(plan, "20261203T000000Z-abcdef", load_settings(_env_file=None))
