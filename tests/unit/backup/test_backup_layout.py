from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from models.backup import (
    LocalLocation,
    S3Location,
    backup_id_of,
    backup_time,
    dump_key,
    manifest_key,
    new_backup_id,
    parse_backup_url,
)
from models.compression import Compression
from tasks.storage.multipart import MAX_PART_BYTES, MAX_PARTS, MIN_PART_BYTES, part_sizes
from tasks.storage.s3 import part_size


def test_backup_urls() -> None:
    assert parse_backup_url("s3://bucket/nightly/prod/") == S3Location("bucket", "nightly/prod")
    assert parse_backup_url("/var/backups/dbops") == LocalLocation(Path("/var/backups/dbops"))
    with pytest.raises(ValueError, match="has no prefix"):
        parse_backup_url("s3://bucket")
    with pytest.raises(ValueError, match="has no prefix"):
        parse_backup_url("s3://bucket/")
    with pytest.raises(ValueError, match="scheme 'gs' is not supported"):
        parse_backup_url("gs://bucket/x")


def test_keys_and_ids() -> None:
    backup_id = new_backup_id(datetime(2026, 11, 27, 2, 0, 5, tzinfo=UTC), "a1b2c3d4")
    assert backup_id == "20261127T020005Z-a1b2c3"
    assert backup_time(backup_id) == datetime(2026, 11, 27, 2, 0, 5, tzinfo=UTC)
    assert (
        dump_key(backup_id, Compression.ZSTD, encrypted=True) == f"backups/{backup_id}/dump.pgcustom.zst.age"
    )
    assert backup_id_of(manifest_key(backup_id)) == backup_id
    assert backup_id_of("backups/not-an-id/manifest.json") is None
    assert backup_id_of("notes.txt") is None
    assert backup_id_of(f"backups/{backup_id}/nested/deeper") is None


@pytest.mark.parametrize("expected", [None, 0, 10**6, 10**9, 10**12, 5 * 10**12, 40 * 10**12])
def test_part_size_keeps_even_four_times_the_estimate_under_the_part_limit(expected: int | None) -> None:
    size = part_size(expected)
    assert size >= MIN_PART_BYTES
    assert size % (1024 * 1024) == 0
    if expected:
        assert size * MAX_PARTS >= expected * 4


def test_parts_grow_so_no_object_s3_accepts_meets_the_part_limit() -> None:
    # A stale estimate (0 pages for a table never analysed) gives the smallest first part: fixed, 16 MiB
    # parts would cap the object at 160 GiB. Growing, the 10,000 parts hold S3's largest object, 5 TiB.
    sizes = list(part_sizes(part_size(1)))
    assert sizes[0] == MIN_PART_BYTES
    assert len(sizes) == MAX_PARTS
    assert sum(sizes) >= 5 * 1024**4
    assert max(sizes) <= MAX_PART_BYTES
    assert sizes == sorted(sizes)
    assert sum(sizes[:1000]) == 1000 * MIN_PART_BYTES  # a small object keeps small parts (and memory)


def test_the_backup_modules_import_one_way() -> None:
    # plan, dump one part, prove coverage, dump the parts, write the manifest: no module of the backup
    # imports one that imports it, not even for type checking only.
    import ast

    folder = Path(__file__).resolve().parents[3] / "tasks" / "backup"
    imports: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        imports[path.stem] = {
            node.module.rsplit(".", 1)[1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tasks.backup.")
        }

    def reaches(start: str, seen: set[str]) -> set[str]:
        for name in imports.get(start, set()) - seen:
            seen.add(name)
            reaches(name, seen)
        return seen

    cycles = sorted(name for name in imports if name in reaches(name, set()))
    assert cycles == []
    assert {"parts", "plan", "pg_dump"} <= imports["dump"]
    assert "dump" not in reaches("parts", set())
