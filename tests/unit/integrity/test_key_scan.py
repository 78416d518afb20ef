"""The one scan per foreign key that counts a child table's rows and its orphans."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table
from sqlalchemy.dialects import postgresql

from models.schema import TABLES
from tasks.integrity.context import counting_key, key_scan_query


def _sql(table: Table) -> str:
    key = counting_key(table)
    assert key is not None
    return str(key_scan_query(key).compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]


def test_every_row_of_the_child_is_kept_and_the_orphans_are_filtered() -> None:
    applications = next(table for table in TABLES if table.name == "applications")
    sql = _sql(applications)
    assert "LEFT OUTER JOIN" in sql
    assert "count(*) FILTER (WHERE" in sql
    assert " IS NULL" in sql
    assert " IS NOT NULL" in sql


def test_a_key_to_its_own_table_joins_a_second_copy() -> None:
    metadata = MetaData()
    nodes = Table(
        "nodes",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("parent_id", ForeignKey("nodes.id")),
    )
    sql = _sql(nodes)
    assert "LEFT OUTER JOIN nodes AS parent ON parent.id = nodes.parent_id" in sql


def test_a_table_without_a_foreign_key_is_counted_on_its_own() -> None:
    universities = next(table for table in TABLES if table.name == "universities")
    assert counting_key(universities) is None
