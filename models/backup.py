"""Backups as data: where they live, how their keys are named, and the manifest that proves them.

Pure: no I/O. A backup is ``<prefix>/backups/<backup id>/`` holding the dump object and, written
last, ``manifest.json``. A backup id sorts by time, so listings sort newest-first without a clock.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from models.compression import Compression
from models.retention import RetentionPlan

BACKUPS_FOLDER = "backups"
MANIFEST_NAME = "manifest.json"
REHEARSAL_NAME = "rehearsal.json"
PIN_NAME = "pin.json"
_BACKUP_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class LocalLocation:
    directory: Path

    def __str__(self) -> str:
        return str(self.directory)


def parse_backup_url(raw: str) -> S3Location | LocalLocation:
    """``s3://bucket/prefix`` or a local directory; an S3 URL without a prefix is refused.

    Deleting old backups is confined to keys under the prefix: a bucket root as the prefix would put
    every object in the bucket within reach of retention.
    """
    if raw.startswith("s3://"):
        bucket, _, prefix = raw.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        if not bucket:
            raise ValueError("DBOPS_BACKUP_URL names no bucket; use s3://BUCKET/PREFIX")
        if not prefix:
            raise ValueError(
                f"DBOPS_BACKUP_URL s3://{bucket} has no prefix; use s3://{bucket}/PREFIX so that retention "
                "can never reach objects outside the backups"
            )
        return S3Location(bucket=bucket, prefix=prefix)
    if "://" in raw:
        raise ValueError(
            f"DBOPS_BACKUP_URL scheme {raw.split('://', 1)[0]!r} is not supported; use s3:// or a path"
        )
    return LocalLocation(directory=Path(raw).expanduser())


def new_backup_id(now: datetime, entropy: str) -> str:
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{entropy[:6]}"


def is_backup_id(value: str) -> bool:
    return bool(_BACKUP_ID.match(value))


def backup_time(backup_id: str) -> datetime:
    return datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def backup_folder(backup_id: str) -> str:
    return f"{BACKUPS_FOLDER}/{backup_id}"


def dump_key(backup_id: str, compression: Compression, encrypted: bool) -> str:
    return f"{backup_folder(backup_id)}/dump.pgcustom{compression.suffix}{'.age' if encrypted else ''}"


def part_key(backup_id: str, index: int, name: str, compression: Compression, encrypted: bool) -> str:
    """One part of a multi-part backup, numbered in restore order: ``part-01-pre-data.pgcustom.zst``."""
    suffix = f"{compression.suffix}{'.age' if encrypted else ''}"
    return f"{backup_folder(backup_id)}/part-{index:02d}-{name}.pgcustom{suffix}"


def manifest_key(backup_id: str) -> str:
    return f"{backup_folder(backup_id)}/{MANIFEST_NAME}"


def rehearsal_key(backup_id: str) -> str:
    """The record of the latest restore rehearsal of the backup, kept (and pruned) with it."""
    return f"{backup_folder(backup_id)}/{REHEARSAL_NAME}"


def pin_key(backup_id: str) -> str:
    """Where an operator's pin of the backup lives: beside it, rewritten or removed at will."""
    return f"{backup_folder(backup_id)}/{PIN_NAME}"


def backup_id_of(key: str) -> str | None:
    """The backup a key belongs to, or None for keys outside the backups layout."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == BACKUPS_FOLDER and is_backup_id(parts[1]):
        return parts[1]
    return None


class BackupSource(BaseModel):
    """The database a backup came from: its server's identity and its name.

    ``system_identifier`` (from ``pg_control_system()``) tells two servers apart even when their
    databases share a name, as staging's and production's ``platform`` do. Backups of releases that
    did not record it have None there.
    """

    system_identifier: str | None = None
    database: str

    def describe(self) -> str:
        return f"{self.database} (server {self.system_identifier or 'unrecorded'})"


class BackupPin(BaseModel):
    """An operator's word that a backup must never be pruned, and why."""

    reason: str
    pinned_at: datetime


class PartKind(StrEnum):
    """What a stored object of a backup holds, as ``pg_dump --section`` divides a database."""

    WHOLE = "whole"
    PRE_DATA = "pre-data"
    DATA = "data"
    POST_DATA = "post-data"


class BackupPart(BaseModel):
    """One stored object of a backup: a custom-format archive of one section, or of one group of tables'
    data, each written by its own pg_dump from the backup's one snapshot."""

    name: str = Field(
        description="``pre-data``, ``data-1`` ... ``data-N``, ``post-data``; ``dump`` for a whole one."
    )
    kind: PartKind
    object_key: str
    stored_bytes: int
    dump_bytes: int
    sha256: str = Field(description="Of the stored object, as it is in the store.")
    tables: list[str] = Field(default_factory=list, description="Qualified names whose rows the part holds.")
    sequences: list[str] = Field(
        default_factory=list, description="Qualified sequences whose values it sets."
    )
    large_objects: bool = False
    row_counts: dict[str, int] = Field(
        default_factory=dict, description="By qualified name, in the snapshot."
    )


class BackupManifest(BaseModel):
    """Written last, beside the dump: a backup without one is incomplete and never restorable.

    Format 1 holds one object (``object_key``, ``sha256``). Format 2 holds ``parts``: pre-data, the
    data of the tables in groups, post-data; there the sizes are the parts' sums, and ``object_key``
    and ``sha256`` describe the set (:func:`parts_digest`).
    """

    format_version: int = 1
    backup_id: str
    database: str = Field(description="The source as it was reached: ``name on host:port``.")
    source: BackupSource | None = Field(default=None, description="None in backups of early releases.")
    server_version: str
    pg_dump_version: str
    dump_format: str = "custom"
    compression: Compression
    compression_level: int
    encrypted_for: list[str] = Field(default_factory=list, description="Fingerprints of the age recipients.")
    object_key: str = Field(description="The one object; for a multi-part backup, the folder of its parts.")
    stored_bytes: int
    dump_bytes: int = Field(description="Size of the pg_dump output before compression and encryption.")
    sha256: str = Field(
        description="Of the one stored object; for a multi-part backup, of its parts' ``name sha256`` lines."
    )
    parts: list[BackupPart] = Field(default_factory=list, description="Empty for a single-object backup.")
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    alembic_revision: str | None
    row_counts: dict[str, int]


def stored_parts(manifest: BackupManifest) -> list[BackupPart]:
    """The backup's stored objects in restore order; a single-object backup is one ``whole`` part."""
    if manifest.parts:
        return manifest.parts
    return [
        BackupPart(
            name="dump",
            kind=PartKind.WHOLE,
            object_key=manifest.object_key,
            stored_bytes=manifest.stored_bytes,
            dump_bytes=manifest.dump_bytes,
            sha256=manifest.sha256,
            row_counts=dict(manifest.row_counts),
        )
    ]


def parts_digest(parts: list[BackupPart]) -> str:
    """One sha256 for a set of parts: over their ``name sha256`` lines, in order."""
    lines = "".join(f"{part.name} {part.sha256}\n" for part in parts)
    return hashlib.sha256(lines.encode()).hexdigest()


def source_of(manifest: BackupManifest) -> BackupSource:
    """The backup's source; for a backup of an early release, the name in its ``database`` field."""
    if manifest.source is not None:
        return manifest.source
    return BackupSource(database=manifest.database.split(" on ", 1)[0])


def timelines(manifests: list[BackupManifest]) -> dict[str, list[BackupManifest]]:
    """Backups grouped by the database they came from, each group in the order given.

    A backup of an early release (no recorded server) joins the one recorded source of its name when
    there is exactly one, so a database's history reads on across the upgrade; otherwise it keeps a
    timeline of its own rather than be counted against some other server's database.
    """
    recorded: dict[str, set[str]] = {}
    for manifest in manifests:
        source = source_of(manifest)
        if source.system_identifier is not None:
            recorded.setdefault(source.database, set()).add(source.system_identifier)
    groups: dict[str, list[BackupManifest]] = {}
    for manifest in manifests:
        source = source_of(manifest)
        identifier = source.system_identifier
        if identifier is None and len(recorded.get(source.database, ())) == 1:
            identifier = next(iter(recorded[source.database]))
        groups.setdefault(f"{identifier or 'unrecorded'}/{source.database}", []).append(manifest)
    return groups


class BackupRun(BaseModel):
    """A backup as the nightly job takes it: the new backup, then the retention applied after it."""

    manifest: BackupManifest
    retention: RetentionPlan | None = Field(
        default=None, description="What pruning kept and removed; None when pruning was skipped."
    )
