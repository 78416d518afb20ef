"""``alembic upgrade --sql`` renders what ``dbops migrate`` runs, without a database."""

from __future__ import annotations

import io

from alembic import command

from models.settings import load_settings
from tasks.schema.migrate import alembic_config, ddl_timeouts


def offline_sql(revision_range: str) -> str:
    buffer = io.StringIO()
    config = alembic_config()
    config.output_buffer = buffer
    command.upgrade(config, revision_range, sql=True)
    return buffer.getvalue()


def test_offline_sql_opens_with_the_sessions_ddl_timeouts() -> None:
    sql = offline_sql("base:0002")
    expected = [f"SET {name} = '{value}';" for name, value in ddl_timeouts(load_settings()).items()]
    statements = [line for line in sql.splitlines() if line.strip()]
    assert statements[:3] == [*expected, "BEGIN;"]


def test_0002_validates_after_the_adds_commit() -> None:
    sql = offline_sql("0001:0002")
    last_add = sql.rindex("NOT VALID;")
    commit = sql.index("COMMIT;", last_add)
    first_validate = sql.index("VALIDATE CONSTRAINT")
    assert last_add < commit < first_validate
    assert "BEGIN;" not in sql[commit:first_validate]
