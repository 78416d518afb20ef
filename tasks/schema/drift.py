"""Drift: differences between the models and the live database, as Alembic's autogenerate sees them.

A column added by hand, an index dropped in an incident, a migration never applied, a revision edited
or deleted after it was applied: each shows up here as one readable line, so ``dbops check`` can fail
a deploy before the application trips on it.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL

from models.database_url import describe
from models.results import DriftReport
from models.schema import Base, is_modelled
from models.settings import Settings
from tasks.postgres.engine import check_connection, make_engine
from tasks.schema.applied import applied_revision_differences
from tasks.schema.migrate import head_revision, script_directory


def detect_drift(url: URL, settings: Settings) -> DriftReport:
    engine = make_engine(url, settings, purpose="check", isolation_level="AUTOCOMMIT")
    check_connection(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "compare_server_default": True, "include_name": is_modelled},
        )
        revision = context.get_current_revision()
        differences = [describe_difference(item) for item in compare_metadata(context, Base.metadata)]
        differences += applied_revision_differences(connection, script_directory())
    head = head_revision()
    if revision != head:
        differences.insert(
            0,
            f"database is at revision {revision or 'none (empty)'}, "
            f"the code's head is {head}: run dbops migrate",
        )
    return DriftReport(database=describe(url), revision=revision, head=head, differences=differences)


def describe_difference(difference: Any) -> str:
    """One line for an entry of ``compare_metadata``'s output (a tuple, or a list of column changes)."""
    if isinstance(difference, list):
        return "; ".join(describe_difference(change) for change in difference)
    kind = difference[0]
    if kind in ("add_table", "remove_table"):
        table = difference[1]
        return _presence(kind, f"table {table.name}")
    if kind in ("add_column", "remove_column"):
        table_name, column = difference[2], difference[3]
        return _presence(kind, f"column {table_name}.{column.name}")
    if kind in ("add_index", "remove_index"):
        index = difference[1]
        columns = ", ".join(str(expression) for expression in index.expressions)
        return _presence(kind, f"index {index.name} on {index.table.name} ({columns})")
    if kind in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        constraint = difference[1]
        return _presence(kind, f"constraint {constraint.name} on {constraint.table.name}")
    if kind.startswith("modify_"):
        _, _, table_name, column_name, _, existing, wanted = difference
        what = kind.removeprefix("modify_")
        return (
            f"column {table_name}.{column_name}: {what} is {existing!r} in the database, "
            f"{wanted!r} in the models"
        )
    return repr(difference)


def _presence(kind: str, subject: str) -> str:
    if kind.startswith("add"):
        return f"{subject} is in the models but missing from the database"
    return f"{subject} is in the database but not in the models"
