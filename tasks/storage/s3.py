"""Any S3-compatible store (AWS, MinIO, R2) through boto3's managed transfers.

Uploads stream as multipart uploads of our own (:mod:`tasks.storage.multipart`): parts uploaded
concurrently, memory bounded by part size times concurrency. The first parts are sized from the
expected size, and the size doubles every 1,000 parts, so an object of any size S3 accepts (5 TiB)
fits in its 10,000 parts even when the estimate was far too small (a table never analysed counts 0
pages). If reading the source raises (the dump failed), the multipart upload is aborted, so no partial
object ever becomes visible; uploads orphaned by a killed process are listed by
:meth:`S3Store.open_uploads` for the incomplete-backup sweep to judge.

S3-compatible stores differ. Required: PutObject, the multipart upload calls, GetObject, HeadObject,
ListObjectsV2 and DeleteObject. Used only where offered: ListMultipartUploads (sweeping interrupted
uploads), DeleteObjects (batched deletes; one DeleteObject per key otherwise). Checksum headers are sent
only where the API requires them, since some stores reject the newer ones; the sha256 in each manifest
checks the data end to end anyway.

Object lock (only with DBOPS_BACKUP_OBJECT_LOCK): GetObjectLockConfiguration tells before a backup
whether the bucket can lock at all; a store that refuses to say is left to the first locked write.
Locked writes carry ``ObjectLockMode`` and ``ObjectLockRetainUntilDate``, and a CRC32 checksum, which
S3 requires beside them. Each is read back with HeadObject (the credentials need
``s3:GetObjectRetention`` to see a lock); a store that stored the object without its lock gets it
set with PutObjectRetention, and where that does not hold either the backup fails. Locks live on
object versions: an object lock bucket is versioned, and a DeleteObject without a version id, as
dbops sends, never fails on a lock; it only hides the object behind a delete marker. Pruning
therefore asks each object's lock with :meth:`S3Store.locked_until` before it deletes anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from models.backup import S3Location, backup_id_of
from models.errors import (
    ObjectExistsError,
    ObjectLockUnavailableError,
    StorageError,
    StorageFeatureMissingError,
)
from models.retention import ObjectLock
from tasks.storage.base import OpenUpload, StoredObject
from tasks.storage.multipart import MAX_PARTS, MIN_PART_BYTES, PARTS_PER_SIZE, MultipartUpload

#: Room for a dump that grows beyond the estimate before the part limit bites.
SIZE_HEADROOM = 4
#: How stores say they lack an operation, or that these credentials may not use it.
_UNSUPPORTED_CODES = frozenset({"NotImplemented", "XNotImplemented", "MethodNotAllowed", "AccessDenied"})
_UNSUPPORTED_STATUSES = frozenset({403, 405, 501})


#: How a conditional write says an object is already there (409: another write of it is under way).
_ALREADY_THERE_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
#: How stores that do not know ``If-None-Match`` on PutObject refuse it, besides NotImplemented.
_CONDITION_REFUSED_CODES = frozenset({"InvalidArgument", "InvalidRequest"})

#: S3 requires a checksum header on every write that carries a lock.
_LOCK_CHECKSUM = "CRC32"


def unsupported(error: ClientError) -> bool:
    """Whether *error* says the store (or the credentials) do not offer the operation at all."""
    code = error.response.get("Error", {}).get("Code")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _UNSUPPORTED_CODES or status in _UNSUPPORTED_STATUSES


def _lock_missing_on_bucket(error: ClientError) -> bool:
    """Whether a locked write was refused because the bucket has no object lock: AWS says
    ``InvalidRequest: Bucket is missing Object Lock Configuration``, others much the same."""
    found = error.response.get("Error", {})
    message = str(found.get("Message", "")).replace(" ", "").lower()
    return found.get("Code") == "InvalidRequest" and "objectlockconfiguration" in message


def _lock_arguments(lock: ObjectLock | None) -> dict[str, Any]:
    if lock is None:
        return {}
    return {
        "ObjectLockMode": lock.mode.value.upper(),
        "ObjectLockRetainUntilDate": lock.retain_until,
        "ChecksumAlgorithm": _LOCK_CHECKSUM,
    }


def part_size(expected_size: int | None) -> int:
    """The first parts' size: at least 16 MiB, and large enough for 4x the expected size in 10,000 parts
    (later parts grow: :func:`tasks.storage.multipart.part_sizes`)."""
    if not expected_size:
        return MIN_PART_BYTES * 4
    needed = math.ceil(expected_size * SIZE_HEADROOM / MAX_PARTS)
    return max(MIN_PART_BYTES, math.ceil(needed / (1024 * 1024)) * 1024 * 1024)


class S3Store:
    def __init__(
        self,
        location: S3Location,
        *,
        endpoint_url: str | None = None,
        max_concurrency: int = 4,
        page_size: int = 1000,
        parts_per_size: int = PARTS_PER_SIZE,
    ) -> None:
        self.location = location
        self.page_size = page_size
        self.parts_per_size = parts_per_size
        self.endpoint_url = endpoint_url
        self.max_concurrency = max_concurrency
        self._batch_delete = True  # until the store says it has no DeleteObjects
        self._conditional_put = True  # until the store says it has no If-None-Match on PutObject
        # botocore's standard retry mode: exponential backoff with jitter on throttling and 5xx.
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"{self.location}{where}"

    def _key(self, key: str) -> str:
        return f"{self.location.prefix}/{key}" if key else f"{self.location.prefix}/"

    def _failed(self, action: str, error: Exception) -> StorageError:
        return StorageError(
            f"could not {action} {self.describe()}",
            detail=str(error).splitlines()[0] if str(error) else type(error).__name__,
            hint="check DBOPS_BACKUP_URL, DBOPS_S3_ENDPOINT_URL, the credentials, and that the store is up",
        )

    def _no_object_lock(
        self, detail: str, outcome: str = "nothing was written"
    ) -> ObjectLockUnavailableError:
        return ObjectLockUnavailableError(
            f"DBOPS_BACKUP_OBJECT_LOCK asks for immutable backups, but bucket {self.location.bucket} "
            f"({self.describe()}) has no object lock; {outcome}",
            detail=detail,
            hint="back up to a bucket created with object lock enabled (ObjectLockEnabledForBucket), "
            "or unset DBOPS_BACKUP_OBJECT_LOCK",
        )

    def _write_failed(
        self, verb: str, key: str, error: BotoCoreError | ClientError
    ) -> ObjectLockUnavailableError | StorageError:
        if isinstance(error, ClientError) and _lock_missing_on_bucket(error):
            return self._no_object_lock(str(error).splitlines()[0], f"{key} was refused")
        return self._failed(f"{verb} {key} to", error)

    def check_object_lock(self) -> str | None:
        try:
            found = self.client.get_object_lock_configuration(Bucket=self.location.bucket)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code == "ObjectLockConfigurationNotFoundError":
                raise self._no_object_lock(str(error).splitlines()[0]) from None
            if unsupported(error):
                # Not every store, or every set of credentials, may read the configuration; the
                # first locked write then tells, refused in one line if the bucket cannot lock.
                return (
                    f"could not check the object lock of {self.describe()} ({code}); "
                    "the first locked write will tell"
                )
            raise self._failed("read the object lock configuration of", error) from None
        except BotoCoreError as error:
            raise self._failed("read the object lock configuration of", error) from None
        configuration = found.get("ObjectLockConfiguration", {})
        if configuration.get("ObjectLockEnabled") != "Enabled":
            raise self._no_object_lock("its ObjectLockEnabled is not Enabled")
        default = configuration.get("Rule", {}).get("DefaultRetention")
        if default:
            period = f"{default['Days']} days" if default.get("Days") else f"{default.get('Years')} years"
            return (
                f"bucket {self.location.bucket} has a default retention ({default.get('Mode')}, {period}): "
                "it also locks the pins and rehearsal records dbops rewrites, whose every older version "
                "then stays until it expires, and makes the store demand a checksum on every write; dbops "
                "locks each backup itself, so remove the rule"
            )
        return None

    def locked_until(self, key: str) -> datetime | None:
        head = self._head(key, f"read the object lock of {key} in")
        until: datetime | None = head.get("ObjectLockRetainUntilDate") if head is not None else None
        return until.astimezone(UTC) if until is not None else None

    def _head(self, key: str, action: str) -> dict[str, Any] | None:
        """HeadObject's answer; None when there is no such object."""
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.location.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise self._failed(action, error) from None
        except BotoCoreError as error:
            raise self._failed(action, error) from None
        return head

    def _confirm_lock(self, key: str, lock: ObjectLock) -> None:
        """Read the lock back; set it afresh on a store that stored the object without it.

        A store may accept the lock headers of a multipart upload and not apply them (moto's server
        does so); PutObjectRetention then locks the version that was stored. A store on which
        neither holds fails the backup rather than keep it unlocked.
        """
        try:
            if self._holds(key, lock):
                return
            self.client.put_object_retention(
                Bucket=self.location.bucket,
                Key=self._key(key),
                Retention={"Mode": lock.mode.value.upper(), "RetainUntilDate": lock.retain_until},
            )
            if self._holds(key, lock):
                return
        except ClientError as error:
            if _lock_missing_on_bucket(error):
                raise self._no_object_lock(str(error).splitlines()[0], "the backup is not listed") from None
            raise self._failed(f"lock {key} in", error) from None
        except BotoCoreError as error:
            raise self._failed(f"lock {key} in", error) from None
        raise ObjectLockUnavailableError(
            f"{self.describe()} stored {key} without the object lock it was written with "
            f"({lock.mode.value} until {lock.retain_until.isoformat()}); the backup is not listed",
            hint="give the credentials s3:GetObjectRetention and s3:PutObjectRetention, use a store that "
            "supports object lock, or unset DBOPS_BACKUP_OBJECT_LOCK",
        )

    def _holds(self, key: str, lock: ObjectLock) -> bool:
        head = self.client.head_object(Bucket=self.location.bucket, Key=self._key(key))
        until = head.get("ObjectLockRetainUntilDate")
        return (
            head.get("ObjectLockMode") == lock.mode.value.upper()
            and until is not None
            and until >= lock.retain_until
        )

    def put_stream(
        self, key: str, source: IO[bytes], expected_size: int | None = None, lock: ObjectLock | None = None
    ) -> None:
        lock = lock.as_written_at(datetime.now(UTC)) if lock is not None else None
        upload = MultipartUpload(
            self.client,
            self.location.bucket,
            self._key(key),
            first_part_size=part_size(expected_size),
            concurrency=self.max_concurrency,
            extra=_lock_arguments(lock),
            parts_per_size=self.parts_per_size,
        )
        try:
            upload.run(source)
        except (BotoCoreError, ClientError) as error:
            raise self._write_failed("upload", key, error) from None
        if lock is not None:
            self._confirm_lock(key, lock)

    def put_bytes(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        lock: ObjectLock | None = None,
    ) -> None:
        lock = lock.as_written_at(datetime.now(UTC)) if lock is not None else None
        try:
            self.client.put_object(
                Bucket=self.location.bucket,
                Key=self._key(key),
                Body=data,
                Metadata=dict(metadata or {}),
                **_lock_arguments(lock),
            )
        except (BotoCoreError, ClientError) as error:
            raise self._write_failed("write", key, error) from None
        if lock is not None:
            self._confirm_lock(key, lock)

    def put_new(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        """HeadObject first, then a PutObject with ``If-None-Match: *``, which the store refuses
        (412, or 409 for a racing write) where an object appeared meanwhile. A store without
        conditional writes answers NotImplemented or a bad request: there the check before has to
        do, and later writes skip the header."""
        if self._head(key, f"look for {key} in") is not None:
            raise self._object_exists(key)
        arguments = {
            "Bucket": self.location.bucket,
            "Key": self._key(key),
            "Body": data,
            "Metadata": dict(metadata or {}),
        }
        try:
            if self._conditional_put:
                try:
                    self.client.put_object(**arguments, IfNoneMatch="*")
                    return
                except ClientError as error:
                    code = error.response.get("Error", {}).get("Code")
                    if code in _ALREADY_THERE_CODES:
                        raise self._object_exists(key) from None
                    if not (unsupported(error) or code in _CONDITION_REFUSED_CODES):
                        raise
                    self._conditional_put = False
            self.client.put_object(**arguments)
        except (BotoCoreError, ClientError) as error:
            raise self._write_failed("write", key, error) from None

    def _object_exists(self, key: str) -> ObjectExistsError:
        return ObjectExistsError(f"{key} already exists in {self.describe()}; it was left as it was")

    def read_metadata(self, key: str) -> dict[str, str]:
        try:
            head = self.client.head_object(Bucket=self.location.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as error:
            raise self._failed(f"read the metadata of {key} from", error) from None
        return dict(head.get("Metadata", {}))

    def open_read(self, key: str) -> IO[bytes]:
        try:
            body: IO[bytes] = self.client.get_object(Bucket=self.location.bucket, Key=self._key(key))["Body"]
        except (BotoCoreError, ClientError) as error:
            raise self._failed(f"read {key} from", error) from None
        return body

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as body:
            return body.read()

    def list_objects(self, folder: str = "") -> Iterator[StoredObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self.location.prefix) + 1
        try:
            pages = paginator.paginate(
                Bucket=self.location.bucket,
                Prefix=self._key(folder),
                PaginationConfig={"PageSize": self.page_size},
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield StoredObject(
                        key=item["Key"][strip:], size=item["Size"], modified=item["LastModified"]
                    )
        except (BotoCoreError, ClientError) as error:
            raise self._failed("list", error) from None

    def stat(self, key: str) -> StoredObject | None:
        try:
            head = self.client.head_object(Bucket=self.location.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise self._failed(f"look up {key} in", error) from None
        except BotoCoreError as error:
            raise self._failed(f"look up {key} in", error) from None
        return StoredObject(key=key, size=int(head["ContentLength"]), modified=head["LastModified"])

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            if backup_id_of(key) is None:
                raise StorageError(f"refusing to delete {key}: not part of a backup under {self.location}")
        try:
            for start in range(0, len(keys), 1000):
                self._delete_batch(keys[start : start + 1000])
        except (BotoCoreError, ClientError) as error:
            raise self._failed("delete from", error) from None

    def _delete_batch(self, keys: list[str]) -> None:
        """DeleteObjects where the store has it; one DeleteObject per key where it does not."""
        if self._batch_delete:
            try:
                response = self.client.delete_objects(
                    Bucket=self.location.bucket, Delete={"Objects": [{"Key": self._key(key)} for key in keys]}
                )
            except ClientError as error:
                if not unsupported(error):
                    raise
                self._batch_delete = False
            else:
                if response.get("Errors"):
                    first = response["Errors"][0]
                    raise StorageError(
                        f"could not delete {first['Key']} from {self.describe()}", detail=first["Message"]
                    )
                return
        for key in keys:
            self.client.delete_object(Bucket=self.location.bucket, Key=self._key(key))

    def _last_activity(self, upload: Mapping[str, Any]) -> datetime:
        """When the upload last received a part: a backup writing for longer than the grace period is
        still alive, and its start time alone would have it aborted under the writer's feet."""
        newest: datetime = upload["Initiated"]
        paginator = self.client.get_paginator("list_parts")
        try:
            for page in paginator.paginate(
                Bucket=self.location.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            ):
                for part in page.get("Parts", []):
                    newest = max(newest, part["LastModified"])
        except ClientError as error:
            if not unsupported(error):
                raise
        return newest

    def open_uploads(self, folder: str = "") -> Iterator[OpenUpload]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        strip = len(self.location.prefix) + 1
        try:
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self._key(folder)):
                for upload in page.get("Uploads", []):
                    yield OpenUpload(
                        key=upload["Key"][strip:],
                        last_activity=self._last_activity(upload),
                        handle=upload["UploadId"],
                    )
        except ClientError as error:
            if unsupported(error):
                raise StorageFeatureMissingError(
                    f"{self.describe()} does not allow listing multipart uploads (ListMultipartUploads)",
                    detail=str(error).splitlines()[0],
                    hint="interrupted uploads are not swept here; a lifecycle rule with "
                    "AbortIncompleteMultipartUpload on the bucket does the same",
                ) from None
            raise self._failed("list the uploads in progress in", error) from None
        except BotoCoreError as error:
            raise self._failed("list the uploads in progress in", error) from None

    def discard_upload(self, upload: OpenUpload) -> None:
        try:
            self.client.abort_multipart_upload(
                Bucket=self.location.bucket, Key=self._key(upload.key), UploadId=upload.handle
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return
            raise self._failed(f"abort the upload of {upload.key} in", error) from None
        except BotoCoreError as error:
            raise self._failed(f"abort the upload of {upload.key} in", error) from None
