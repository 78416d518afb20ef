"""Alembic environment, kept thin: the caller hands in the connection through ``Config.attributes``.

``dbops migrate`` and the Prefect flow pass a connection opened under the migration lock. The plain
``alembic`` command line passes none, and gets the same lock, timeouts and settings here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy.engine import Connection, Engine

from models.schema import Base, is_modelled

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = Base.metadata


def run_migrations(connection: Connection) -> None:
    """Each revision commits in a transaction of its own, with its checksum recorded in it: a revision
    whose DDL times out waiting for a lock is retried alone, and the ones before it stay applied."""
    from tasks.schema.applied import record_applied_revision

    callers_callback = config.attributes.get("on_version_apply")

    def on_version_apply(
        ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
    ) -> None:
        record_applied_revision(ctx=ctx, step=step)
        if callers_callback is not None:
            callers_callback(ctx=ctx, step=step, heads=heads, run_args=run_args)

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        on_version_apply=on_version_apply,
        transaction_per_migration=True,
        include_name=is_modelled,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_from_alembic_command_line() -> None:
    from models.settings import load_settings
    from tasks.postgres.engine import database_url
    from tasks.schema.migrate import locked_migration_connection

    settings = load_settings()
    with locked_migration_connection(database_url(settings), settings) as connection:
        run_migrations(connection)


def render_sql() -> None:
    """``alembic upgrade A:B --sql``: print the DDL for review (and for ``make lint``) without connecting.

    It opens with the session timeouts that ``dbops migrate`` connects with, so the script behaves
    the same when run by hand, and a linter sees every statement run under them.
    """
    from models.settings import load_settings
    from tasks.schema.migrate import ddl_timeouts

    context.configure(url="postgresql+psycopg://", target_metadata=target_metadata, literal_binds=True)
    for name, value in ddl_timeouts(load_settings()).items():
        context.execute(f"SET {name} = '{value}'")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    render_sql()
else:
    connectable = config.attributes.get("connection")
    if connectable is None:
        run_from_alembic_command_line()
    elif isinstance(connectable, Engine):
        with connectable.connect() as connection:
            run_migrations(connection)
    else:
        run_migrations(connectable)
