"""Revision planning and lock-key logic, on the real migration scripts but without a database."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Index, Integer, MetaData, Table, Text

from models.errors import MigrationError, RevisionNotFoundError
from models.results import MigrationDirection
from tasks.postgres.locks import lock_key
from tasks.schema.drift import describe_difference
from tasks.schema.lock import MIGRATION_LOCK_KEY
from tasks.schema.migrate import head_revision, plan_direction, resolve_target, script_directory


def test_directions() -> None:
    script = script_directory()
    head = head_revision()
    assert plan_direction(script, None, head) is MigrationDirection.UPGRADE
    assert plan_direction(script, head, head) is MigrationDirection.NONE
    assert plan_direction(script, head, None) is MigrationDirection.DOWNGRADE
    assert plan_direction(script, None, None) is MigrationDirection.NONE


def test_a_database_revision_unknown_to_the_code_is_an_error() -> None:
    with pytest.raises(MigrationError, match="revision deadbeef, which this code does not know"):
        plan_direction(script_directory(), "deadbeef", head_revision())


def test_targets_resolve_or_are_refused() -> None:
    script = script_directory()
    assert resolve_target(script, "head") == head_revision()
    assert resolve_target(script, "base") is None
    with pytest.raises(RevisionNotFoundError, match="no migration revision named 'zzzz'"):
        resolve_target(script, "zzzz")


def test_lock_key_is_fixed_and_a_signed_bigint() -> None:
    # Fixed for good: a run of this release must queue behind a migration started by an earlier one.
    assert MIGRATION_LOCK_KEY == lock_key("dbops.schema-migrations") == -9209757089780497556
    assert -(2**63) <= MIGRATION_LOCK_KEY < 2**63
    assert lock_key("another") != MIGRATION_LOCK_KEY


def test_drift_lines_say_which_side_has_what() -> None:
    table = Table("users", MetaData(), Column("id", Integer), Column("nickname", Text))
    assert describe_difference(("remove_column", None, "users", table.c.nickname)) == (
        "column users.nickname is in the database but not in the models"
    )
    assert (
        describe_difference(("add_table", table))
        == "table users is in the models but missing from the database"
    )
    index = Index("ix_users_nickname", table.c.nickname)
    assert describe_difference(("add_index", index)) == (
        "index ix_users_nickname on users (users.nickname) is in the models but missing from the database"
    )
    change: list[tuple[object, ...]] = [("modify_nullable", None, "users", "id", {}, True, False)]
    assert (
        describe_difference(change)
        == "column users.id: nullable is True in the database, False in the models"
    )
