"""Which dumps and pg_restore programs a server of a given major can load: never newer than itself."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from models.backup import BackupManifest
from models.compression import Compression
from models.errors import RestoreRefusedError
from tasks.postgres.binaries import Program
from tasks.restore.copy import check_dump_loadable, check_pg_restore_fits

SERVER = "the server at db:5432"


def manifest(server_version: str, pg_dump_version: str) -> BackupManifest:
    moment = datetime(2026, 11, 27, 2, tzinfo=UTC)
    return BackupManifest(
        backup_id="20261127T020000Z-ab12cd",
        database="platform",
        server_version=server_version,
        pg_dump_version=pg_dump_version,
        compression=Compression.ZSTD,
        compression_level=1,
        object_key="backups/20261127T020000Z-ab12cd/dump.pgcustom.zst",
        stored_bytes=1,
        dump_bytes=1,
        sha256="0" * 64,
        started_at=moment,
        finished_at=moment,
        duration_seconds=1.0,
        alembic_revision=None,
        row_counts={},
    )


def pg_restore(version: str) -> Program:
    major = version.split(".", 1)[0]
    return Program(
        Path(f"/usr/lib/postgresql/{major}/bin/pg_restore"), f"pg_restore (PostgreSQL) {version}", "system"
    )


def test_a_dump_loads_into_its_pg_dumps_major_and_later() -> None:
    check_dump_loadable(manifest("15.14", "15.14"), 15, SERVER)
    check_dump_loadable(manifest("15.14", "15.14"), 18, SERVER)
    check_dump_loadable(manifest("15.14", "18.6"), 18, SERVER)


def test_a_server_dumped_by_a_newer_pg_dump_cannot_take_its_own_backup_back() -> None:
    with pytest.raises(RestoreRefusedError) as refused:
        check_dump_loadable(manifest("15.14 (Debian 15.14-0+deb12u1)", "18.6"), 15, SERVER)

    assert str(refused.value).startswith(
        "backup 20261127T020000Z-ab12cd was written by pg_dump 18.6, and its dump loads only into "
        "PostgreSQL 18 or later; the server at db:5432 is PostgreSQL 15."
    )
    assert "none of its own major was found where it ran" in str(refused.value)
    assert "install its client programs (e.g. postgresql-client-15) where backups run" in str(refused.value)
    assert refused.value.exit_code == 2


def test_a_newer_servers_backup_is_refused_by_an_older_server() -> None:
    with pytest.raises(RestoreRefusedError) as refused:
        check_dump_loadable(manifest("18.6", "18.6"), 16, SERVER)

    assert "the backup is of a PostgreSQL 18.6 server." in str(refused.value)
    assert "none of its own major" not in str(refused.value)


def test_pg_restore_may_not_be_newer_than_the_server() -> None:
    check_pg_restore_fits(pg_restore("15.14"), 15, SERVER)
    check_pg_restore_fits(pg_restore("16.10"), 18, SERVER)

    with pytest.raises(RestoreRefusedError) as refused:
        check_pg_restore_fits(pg_restore("18.6"), 15, SERVER)

    assert "pg_restore that reads this dump is 18.6 (/usr/lib/postgresql/18/bin/pg_restore)" in str(
        refused.value
    )
    assert "install the PostgreSQL 15 client programs (e.g. postgresql-client-15)" in str(refused.value)
