"""A snapshot of the schema's state: revision, and for each model table its rows, indexes and size."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL

from models.database_url import describe
from models.results import SchemaState, TableState
from models.schema import TABLES
from models.settings import Settings
from tasks.postgres.engine import check_connection, make_engine
from tasks.schema.migrate import head_revision


def schema_state(url: URL, settings: Settings) -> SchemaState:
    engine = make_engine(url, settings, purpose="status", isolation_level="AUTOCOMMIT")
    check_connection(engine)
    with engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
        server_version = connection.execute(text("SHOW server_version")).scalar_one()
        present = set(
            connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).scalars()
        )
        tables = []
        for table in TABLES:
            if table.name not in present:
                continue
            rows = connection.execute(select(func.count()).select_from(table)).scalar_one()
            indexes, total_bytes = connection.execute(
                text(
                    "SELECT (SELECT count(*) FROM pg_index WHERE indrelid = CAST(:name AS regclass)),"
                    " pg_total_relation_size(CAST(:name AS regclass))"
                ),
                {"name": table.name},
            ).one()
            tables.append(TableState(name=table.name, rows=rows, indexes=indexes, total_bytes=total_bytes))
    return SchemaState(
        database=describe(url),
        server_version=server_version,
        revision=revision,
        head=head_revision(),
        tables=tables,
    )
