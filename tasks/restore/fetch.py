"""Bring a backup's dump out of the store: sha256-checked, decrypted and decompressed, into a file.

One pass: the stored bytes are hashed as they stream through decryption and decompression into the
file ``pg_restore --jobs`` needs (parallel restore cannot read a pipe). The hash is compared with the
manifest before anything else happens, so a corrupt object fails the run before any database is
touched; the half-written file is removed with it.
"""

from __future__ import annotations

import errno
import gzip
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import zstandard

from models.backup import BackupManifest, BackupPart, PartKind, stored_parts
from models.compression import Compression
from models.errors import BackupCorruptError, RestoreError, RestoreRefusedError
from models.settings import Settings
from tasks.backup.source import recipient_fingerprint
from tasks.backup.streams import CHUNK, Hashing, Produced
from tasks.storage import ObjectStore

_log = logging.getLogger(__name__)
DUMP_NAME = "dump.pgcustom"


@dataclass(frozen=True)
class FetchedDump:
    path: Path
    dump_bytes: int
    stored_bytes: int
    seconds: float


def check_decryptable(manifest: BackupManifest, settings: Settings) -> list[object]:
    """The age identities that open this backup (none for a plain one); refused before any download
    when the backup is encrypted and no configured identity is among its recipients."""
    if not manifest.encrypted_for:
        return []
    import pyrage

    path = settings.backup_age_identity_file
    if path is None:
        raise RestoreRefusedError(
            f"backup {manifest.backup_id} is encrypted and no age identity is configured",
            hint="set DBOPS_BACKUP_AGE_IDENTITY_FILE to the file holding the AGE-SECRET-KEY-1... line",
        )
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise RestoreRefusedError(
            f"cannot read the age identity file {path}: {error.strerror}",
            hint="check DBOPS_BACKUP_AGE_IDENTITY_FILE",
        ) from None
    identities = [
        pyrage.x25519.Identity.from_str(line.strip())
        for line in lines
        if line.strip().startswith("AGE-SECRET-KEY-")
    ]
    matching = [
        identity
        for identity in identities
        if recipient_fingerprint(str(identity.to_public())) in manifest.encrypted_for
    ]
    if not matching:
        raise RestoreRefusedError(
            f"no identity in {path} can decrypt backup {manifest.backup_id}",
            detail=f"it was encrypted for {', '.join(manifest.encrypted_for)}",
            hint="point DBOPS_BACKUP_AGE_IDENTITY_FILE at the key of one of those recipients",
        )
    return list(matching)


def fetch_dump(
    store: ObjectStore,
    manifest: BackupManifest,
    settings: Settings,
    directory: Path,
    *,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> FetchedDump:
    """The whole dump of a single-object backup, unpacked into *directory*."""
    return fetch_part(
        store,
        manifest,
        stored_parts(manifest)[0],
        check_decryptable(manifest, settings),
        directory,
        logger=logger,
    )


def fetch_part(
    store: ObjectStore,
    manifest: BackupManifest,
    part: BackupPart,
    identities: list[object],
    directory: Path,
    *,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> FetchedDump:
    """One stored object of *manifest*, unpacked into a file of *directory* and checked against the
    manifest; the file is removed if it does not match. A disk too small fails first, in one line."""
    log = logger or _log
    started = time.monotonic()
    target = directory / (DUMP_NAME if part.kind is PartKind.WHOLE else f"{part.name}.pgcustom")
    ensure_room(directory, part.dump_bytes, manifest.backup_id)
    stored = Hashing(store.open_read(part.object_key))
    failure: Exception | None = None
    try:
        with target.open("wb") as sink:
            shutil.copyfileobj(unpacked(stored.buffered(), manifest, identities), sink, CHUNK)
    except OSError as error:
        target.unlink(missing_ok=True)
        if error.errno == errno.ENOSPC:
            raise no_room(directory, part.dump_bytes, manifest.backup_id) from None
        failure = error
    except Exception as error:  # judged below, once the whole object has been hashed
        failure = error
    stored.drain()  # what decompression did not get to, so corruption is reported as such
    try:
        verify_stored(stored, manifest.backup_id, part, store)
        verify_unpacked(manifest.backup_id, part, failure, target.stat().st_size if failure is None else 0)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    dump_bytes = target.stat().st_size
    seconds = round(time.monotonic() - started, 3)
    log.info(
        "fetched %s of backup %s: %d bytes stored, %d unpacked, in %.1f s",
        part.name,
        manifest.backup_id,
        stored.bytes,
        dump_bytes,
        seconds,
    )
    return FetchedDump(target, dump_bytes, stored.bytes, seconds)


def ensure_room(directory: Path, needed: int, backup_id: str) -> None:
    """Fail at once, saying how much room is needed and where, when *directory* lacks *needed* bytes."""
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise no_room(directory, needed, backup_id, free)


def no_room(directory: Path, needed: int, backup_id: str, free: int | None = None) -> RestoreError:
    free = shutil.disk_usage(directory).free if free is None else free
    return RestoreError(
        f"restoring backup {backup_id} needs {needed / 1e6:,.1f} MB of room in DBOPS_RESTORE_WORK_DIR "
        f"({directory.parent}), which has {free / 1e6:,.1f} MB free",
        hint="free space there or point DBOPS_RESTORE_WORK_DIR at a larger filesystem; a backup taken in "
        "parts (DBOPS_BACKUP_PARALLELISM of 2 or more) needs room only for its schema",
    )


def verify_stored(stored: Hashing, backup_id: str, part: BackupPart, store: ObjectStore) -> None:
    """Once every stored byte has gone through *stored*: refuse an object that is not the one the
    manifest describes (its size and sha256)."""
    actual = stored.sha256.hexdigest()
    if stored.bytes != part.stored_bytes or actual != part.sha256:
        what = "" if part.kind is PartKind.WHOLE else f"part {part.name} of "
        raise BackupCorruptError(
            f"{what}backup {backup_id} in {store.describe()} does not match its manifest",
            detail=f"read {stored.bytes} bytes with sha256 {actual[:16]}..., the manifest says "
            f"{part.stored_bytes} bytes with sha256 {part.sha256[:16]}...",
            hint="this backup cannot be trusted: use another one, and find out what changed the stored "
            "object",
        )


def verify_unpacked(backup_id: str, part: BackupPart, failure: Exception | None, dump_bytes: int) -> None:
    """After :func:`verify_stored`: an object that matches its manifest but did not unpack (*failure*),
    or unpacked to another size than pg_dump wrote, is refused too."""
    if failure is not None:
        raise RestoreError(
            f"backup {backup_id} could not be unpacked ({part.name})",
            detail=f"{type(failure).__name__}: {failure}",
            hint="the object matches its manifest, so check the age identity and the compression setting",
        )
    if dump_bytes != part.dump_bytes:
        raise BackupCorruptError(
            f"backup {backup_id} ({part.name}) unpacked to {dump_bytes} bytes, "
            f"the manifest says {part.dump_bytes}",
            hint="this backup cannot be trusted: use another one",
        )


def unpacked(source: IO[bytes], manifest: BackupManifest, identities: list[object]) -> IO[bytes]:
    """The dump as pg_dump wrote it, read from the stored bytes *source*: decrypted with *identities*
    (from :func:`check_decryptable`) if the backup is encrypted, then decompressed."""
    if identities:
        import pyrage

        encrypted = source
        source = Produced(lambda writer: pyrage.decrypt_io(encrypted, writer, identities)).buffered()
    if manifest.compression is Compression.ZSTD:
        return cast(IO[bytes], zstandard.ZstdDecompressor().stream_reader(source, read_size=CHUNK))
    if manifest.compression is Compression.GZIP:
        return cast(IO[bytes], gzip.GzipFile(fileobj=source, mode="rb"))
    return source
