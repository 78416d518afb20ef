"""The object store interface the backup and restore code is written against."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Protocol

from models.retention import ObjectLock


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class OpenUpload:
    """An object still being written: an open multipart upload, or a local temporary file.

    *last_activity* is when it last received data, so a long writer is told from a dead one;
    *handle* is what the store needs to discard it (an upload id, a file name).
    """

    key: str
    last_activity: datetime
    handle: str


class ObjectStore(Protocol):
    """Keys are relative to the store's root (its S3 prefix or its directory)."""

    def describe(self) -> str:
        """Where this store is, for messages: ``s3://bucket/prefix`` or a path."""
        ...

    def put_stream(
        self, key: str, source: IO[bytes], expected_size: int | None = None, lock: ObjectLock | None = None
    ) -> None:
        """Store everything *source* yields, in bounded memory; nothing is visible unless it all arrived.

        If reading *source* raises, the partial upload is discarded and the error propagates. With
        *lock*, the object is immutable until its date, or the call fails: never stored unlocked.
        """
        ...

    def put_bytes(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        lock: ObjectLock | None = None,
    ) -> None:
        """Store *data* under *key*, with *metadata* (small string pairs) kept beside it, and *lock*
        as :meth:`put_stream` takes it."""
        ...

    def put_new(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        """Store *data* (and *metadata*, as :meth:`put_bytes` does) only if no object is at *key*;
        raise ``ObjectExistsError`` otherwise, leaving the one there untouched. For what must never
        be overwritten, such as the log archive's batches, whose rows are deleted once stored."""
        ...

    def check_object_lock(self) -> str | None:
        """Raise ``ObjectLockUnavailableError`` if this store cannot lock objects, before anything is
        written; else a warning worth logging (the store would not say), or None."""
        ...

    def locked_until(self, key: str) -> datetime | None:
        """When the object lock on *key* ends (None: no lock, or no such object); the date may have
        passed."""
        ...

    def read_metadata(self, key: str) -> dict[str, str]:
        """The metadata stored with *key* (empty when there is none)."""
        ...

    def open_read(self, key: str) -> IO[bytes]: ...

    def read_bytes(self, key: str) -> bytes: ...

    def list_objects(self, folder: str = "") -> Iterator[StoredObject]:
        """Every object under *folder*, however many (listings paginate)."""
        ...

    def stat(self, key: str) -> StoredObject | None:
        """The stored object *key* as the store has it now (one HEAD), or None when there is none."""
        ...

    def delete(self, keys: list[str]) -> None:
        """Delete *keys*; refuses any key outside the backups layout."""
        ...

    def open_uploads(self, folder: str = "") -> Iterator[OpenUpload]:
        """Every object still being written under *folder*; raises ``StorageFeatureMissingError``
        where the store cannot list them."""
        ...

    def discard_upload(self, upload: OpenUpload) -> None:
        """Throw away *upload* (abort it, remove its file); one already gone is no error."""
        ...
