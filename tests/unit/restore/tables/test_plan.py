"""The decisions of a table restore that need no database: merge order and the refusals."""

from __future__ import annotations

import pytest

from models.errors import RestoreRefusedError
from models.schema import TABLES
from models.table_restore import TableRestoreRequest
from tasks.restore.tables.plan import (
    check_in_backup,
    check_mergeable,
    check_schema_name,
    check_where_applies,
    checked_request,
    merge_order,
)

#: The platform's foreign keys, as (referencing, referenced) pairs, read from the models.
PLATFORM_REFERENCES = [(table.name, key.column.table.name) for table in TABLES for key in table.foreign_keys]


def test_parents_merge_before_the_tables_that_reference_them() -> None:
    order = merge_order(["applications", "users", "courses", "universities"], PLATFORM_REFERENCES)

    assert order.index("universities") < order.index("courses") < order.index("applications")
    assert order.index("universities") < order.index("users") < order.index("applications")


def test_only_references_among_the_chosen_tables_order_them() -> None:
    # courses references universities, which is not chosen: the given order stands.
    assert merge_order(["applications", "courses"], PLATFORM_REFERENCES) == ["courses", "applications"]
    assert merge_order(["audit_logs", "analytics_events"], PLATFORM_REFERENCES) == [
        "audit_logs",
        "analytics_events",
    ]


def test_a_self_reference_orders_nothing() -> None:
    assert merge_order(["b", "a"], [("a", "a"), ("b", "a")]) == ["a", "b"]


def test_a_cycle_and_what_hangs_on_it_go_last_in_the_given_order() -> None:
    assert merge_order(["x", "a", "b"], [("a", "b"), ("b", "a")]) == ["x", "a", "b"]
    assert merge_order(["c", "b", "a", "y"], [("a", "b"), ("b", "a"), ("c", "a")]) == ["y", "c", "b", "a"]


def test_tables_named_twice_merge_once() -> None:
    assert merge_order(["courses", "courses"], PLATFORM_REFERENCES) == ["courses"]
    request = checked_request(
        TableRestoreRequest(tables=["courses", " courses", ""], where="  ", into_schema="restored")
    )
    assert request.tables == ["courses"]
    assert request.where is None


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"tables": []}, "no table to restore"),
        ({"replace": True}, "there is no --merge"),
        ({"into_schema": "Restored"}, "is not a plain lower-case name"),
        ({"into_schema": "1restored"}, "is not a plain lower-case name"),
        ({"into_schema": "pg_restored"}, "is reserved"),
        ({"into_schema": "public"}, "is reserved"),
        ({"into_schema": "x" * 64}, "longer than PostgreSQL's 63 bytes"),
    ],
)
def test_requests_that_cannot_be_right_are_refused(request_fields: dict[str, object], message: str) -> None:
    fields = {"tables": ["applications"], "into_schema": "restored"} | request_fields

    with pytest.raises(RestoreRefusedError, match=message) as refused:
        checked_request(TableRestoreRequest.model_validate(fields))

    assert "nothing was done" in str(refused.value)
    assert refused.value.exit_code == 2


def test_a_schema_name_people_can_type_is_accepted() -> None:
    check_schema_name("restore_applications_2026")


def test_a_table_missing_from_the_backup_is_named_with_what_the_backup_holds() -> None:
    with pytest.raises(RestoreRefusedError, match="table applicatons is not in backup B") as refused:
        check_in_backup(["applicatons", "courses"], ["courses", "applications"], "B")

    assert refused.value.detail == "it holds applications, courses"


def test_merging_needs_a_primary_key() -> None:
    check_mergeable({"courses": ("id",)})
    with pytest.raises(RestoreRefusedError, match="table notes has no primary key"):
        check_mergeable({"courses": ("id",), "notes": ()})


def test_a_filter_that_applies_to_no_table_is_refused() -> None:
    check_where_applies(
        "university_id = 'x'", {"applications": "no such column"}, ["applications", "courses"]
    )
    with pytest.raises(RestoreRefusedError, match="--where applies to none of the tables"):
        check_where_applies(
            "unversity_id = 'x'", {"courses": 'column "unversity_id" does not exist'}, ["courses"]
        )


def test_replace_is_refused_when_the_filter_misses_a_table() -> None:
    """The table the filter misses would be restored whole, and --replace would revert all of it."""
    missed = {"applications": 'column "university_id" does not exist'}
    check_where_applies("university_id = 'x'", missed, ["applications", "courses"], replace=False)
    check_where_applies("university_id = 'x'", {}, ["applications", "courses"], replace=True)
    with pytest.raises(RestoreRefusedError, match="--where does not apply to table applications") as refused:
        check_where_applies("university_id = 'x'", missed, ["applications", "courses"], replace=True)
    assert "--replace would put back every row of it" in str(refused.value)
