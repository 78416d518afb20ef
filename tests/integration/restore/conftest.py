"""What the restore tests share: a store of their own, the target database and a backup of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from models.backup import BackupManifest
from models.settings import Settings
from tasks.backup.dump import backup
from tasks.postgres.embedded import EmbeddedServer
from tasks.storage import ObjectStore, open_store
from tests.integration.conftest import admin_connection, connect, drop_databases_like


@pytest.fixture
def restore_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"backup_url": str(tmp_path / "backups"), "bcrypt_rounds": 4})


@pytest.fixture
def target(seeded_url: URL, pg_server: EmbeddedServer) -> Iterator[str]:
    """The seeded test database's name; the databases a restore made beside it are dropped after."""
    name = str(seeded_url.database)
    yield name
    drop_databases_like(pg_server, name + "%", keep=name)


@pytest.fixture
def taken(seeded_url: URL, restore_settings: Settings) -> tuple[ObjectStore, BackupManifest]:
    store = open_store(restore_settings)
    return store, backup(seeded_url, restore_settings, store)


def databases(server: EmbeddedServer, like: str) -> set[str]:
    with admin_connection(server) as connection:
        rows = connection.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (like + "%",))
        return {str(row[0]) for row in rows}


def count(url: URL, table: str) -> int:
    with connect(url) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(str(row[0]))
