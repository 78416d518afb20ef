"""The coverage proof is pg_dump's own selection: a part that loses what a single pg_dump would have
dumped fails the backup before the manifest, naming the entry, and nothing is kept."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from models.errors import BackupError
from models.settings import Settings
from tasks.backup.catalog import list_backups
from tasks.backup.dump import backup
from tasks.postgres.binaries import find_program
from tasks.storage import open_store
from tests.integration.conftest import connect


def losing_pg_dump(tmp_path: Path, pg_bindir: Path, table: str) -> Path:
    """A bin directory whose pg_dump is the real one, except that every data-only dump (a data part)
    leaves out *table*'s rows; pg_restore is the real one."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    real = find_program("pg_dump", pg_bindir)
    wrapper = bindir / "pg_dump"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for argument in "$@"; do\n'
        f'  if [ "$argument" = "--data-only" ]; then exec {real} "$@" --exclude-table-data={table}; fi\n'
        "done\n"
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.symlink(find_program("pg_restore", pg_bindir), bindir / "pg_restore")
    return bindir


def test_a_part_that_loses_rows_pg_dump_would_dump_fails_the_backup_naming_them(
    database_url: URL, settings: Settings, pg_bindir: Path, tmp_path: Path
) -> None:
    with connect(database_url) as connection:
        connection.execute(
            "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1);"
            "CREATE TABLE other (id int); INSERT INTO other VALUES (1);"
            "CREATE TABLE victim (id int); INSERT INTO victim VALUES (1);"
        )
    configured = settings.model_copy(
        update={
            "backup_url": str(tmp_path / "backups"),
            "backup_parallelism": 2,
            "pg_bindir": losing_pg_dump(tmp_path, pg_bindir, "public.victim"),
        }
    )
    store = open_store(configured)
    with pytest.raises(BackupError) as failure:
        backup(database_url, configured, store)
    assert "do not hold exactly what a single pg_dump of the snapshot would" in failure.value.message
    assert failure.value.detail == "TABLE DATA public victim dbops is in no part"
    assert list_backups(store) == []
    assert [found.key for found in store.list_objects("backups")] == []
