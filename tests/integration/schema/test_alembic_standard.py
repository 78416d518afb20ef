"""pytest-alembic's standard checks, run on a fresh database of the real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.config import Config
from pytest_alembic.plugin.fixtures import alembic_runner  # noqa: F401  (the plugin is off)
from pytest_alembic.tests import (  # noqa: F401  (collected as tests)
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine

from tasks.schema.migrate import alembic_config as dbops_alembic_config


@pytest.fixture
def alembic_config() -> Config:
    return dbops_alembic_config()


@pytest.fixture
def alembic_engine(database_url: URL) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()
