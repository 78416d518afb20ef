"""A local directory as an object store: the embedded default.

Writes are atomic: data goes to a temporary name in the same directory, is fsynced, and only then
renamed into place (and the directory fsynced), so a crash leaves either the whole object or nothing
under the final name.

A directory has no object lock. With DBOPS_BACKUP_OBJECT_LOCK set, backing up here is refused
(exit 2) rather than warned about: the setting promises backups nobody can delete, a warning on a
nightly run nobody watches would leave them deletable while the operator believes otherwise, and no
file permission keeps the owner of the files from deleting them.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import IO

from models.backup import backup_id_of
from models.errors import ObjectExistsError, ObjectLockUnavailableError, StorageError
from models.retention import ObjectLock
from tasks.storage.base import OpenUpload, StoredObject

_PARTIAL = ".partial-"
_METADATA = ".dbops-metadata.json"
_CHUNK = 1 << 20


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise StorageError(f"key {key!r} points outside the backup directory {self.root}")
        return path

    def _cannot_lock(self) -> ObjectLockUnavailableError:
        return ObjectLockUnavailableError(
            f"DBOPS_BACKUP_OBJECT_LOCK asks for immutable backups, but the backup store {self.root} is a "
            "local directory, which cannot lock files against deletion",
            hint="set DBOPS_BACKUP_URL to s3://BUCKET/PREFIX on a bucket created with object lock enabled, "
            "or unset DBOPS_BACKUP_OBJECT_LOCK",
        )

    def check_object_lock(self) -> str | None:
        raise self._cannot_lock()

    def locked_until(self, key: str) -> datetime | None:
        return None

    def put_stream(
        self, key: str, source: IO[bytes], expected_size: int | None = None, lock: ObjectLock | None = None
    ) -> None:
        if lock is not None:
            raise self._cannot_lock()
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f"{final.name}{_PARTIAL}{uuid.uuid4().hex}")
        try:
            with temporary.open("wb") as sink:
                shutil.copyfileobj(source, sink, _CHUNK)
                sink.flush()
                os.fsync(sink.fileno())
            temporary.rename(final)
            _fsync_directory(final.parent)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def put_bytes(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        lock: ObjectLock | None = None,
    ) -> None:
        """Metadata goes into a sidecar file, written first: an object is never there without it."""
        if lock is not None:
            raise self._cannot_lock()
        if metadata:
            self.put_stream(key + _METADATA, BytesIO(json.dumps(dict(metadata), sort_keys=True).encode()))
        self.put_stream(key, BytesIO(data), len(data))

    def put_new(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        """The data is linked into place, which fails where a file already is: two writers of one key
        cannot both succeed. The sidecar goes first, as in :meth:`put_bytes`, once no object is there."""
        final = self._path(key)
        if final.exists():
            raise self._exists(key)
        if metadata:
            self.put_stream(key + _METADATA, BytesIO(json.dumps(dict(metadata), sort_keys=True).encode()))
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f"{final.name}{_PARTIAL}{uuid.uuid4().hex}")
        try:
            with temporary.open("wb") as sink:
                sink.write(data)
                sink.flush()
                os.fsync(sink.fileno())
            os.link(temporary, final)
            _fsync_directory(final.parent)
        except FileExistsError:
            raise self._exists(key) from None
        finally:
            temporary.unlink(missing_ok=True)

    def _exists(self, key: str) -> ObjectExistsError:
        return ObjectExistsError(f"{key} already exists in {self.root}; it was left as it was")

    def read_metadata(self, key: str) -> dict[str, str]:
        try:
            return dict(json.loads(self._path(key + _METADATA).read_bytes()))
        except FileNotFoundError:
            return {}

    def open_read(self, key: str) -> IO[bytes]:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise StorageError(f"no object {key} in {self.root}") from None

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as handle:
            return handle.read()

    def list_objects(self, folder: str = "") -> Iterator[StoredObject]:
        base = self._path(folder) if folder else self.root
        if not base.exists():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and _PARTIAL not in path.name and not path.name.endswith(_METADATA):
                stat = path.stat()
                yield StoredObject(
                    key=path.relative_to(self.root).as_posix(),
                    size=stat.st_size,
                    modified=datetime.fromtimestamp(stat.st_mtime, UTC),
                )

    def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            found = path.stat()
        except FileNotFoundError:
            return None
        return StoredObject(key=key, size=found.st_size, modified=datetime.fromtimestamp(found.st_mtime, UTC))

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            if backup_id_of(key) is None:
                raise StorageError(f"refusing to delete {key}: not part of a backup under {self.root}")
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            self._path(key + _METADATA).unlink(missing_ok=True)
            if path.parent != self.root and not any(path.parent.iterdir()):
                path.parent.rmdir()

    def open_uploads(self, folder: str = "") -> Iterator[OpenUpload]:
        """The temporary files of writes in progress, or of writers killed before their rename."""
        base = self._path(folder) if folder else self.root
        if not base.exists():
            return
        for path in sorted(base.rglob(f"*{_PARTIAL}*")):
            try:
                modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            except FileNotFoundError:  # renamed into place meanwhile
                continue
            final = path.name.split(_PARTIAL, 1)[0]
            key = path.with_name(final).relative_to(self.root).as_posix()
            yield OpenUpload(key=key, last_activity=modified, handle=path.relative_to(self.root).as_posix())

    def discard_upload(self, upload: OpenUpload) -> None:
        self._path(upload.handle).unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
