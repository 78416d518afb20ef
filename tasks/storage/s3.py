"""Any S3-compatible store (AWS, MinIO, R2) through boto3's managed transfers.

Uploads stream through ``upload_fileobj``: multipart, parts uploaded concurrently, memory bounded by
part size times concurrency. The part size grows with the expected size so that even a multi-TB dump
stays under S3's 10,000-part limit. If reading the source raises (the dump failed), s3transfer aborts
the multipart upload, so no partial object ever becomes visible; uploads orphaned by a killed process
are swept by :meth:`S3Store.sweep_incomplete_uploads`.

S3-compatible stores differ. Required: PutObject, the multipart upload calls, GetObject, HeadObject,
ListObjectsV2 and DeleteObject. Used only where offered: ListMultipartUploads (sweeping interrupted
uploads), DeleteObjects (batched deletes; one DeleteObject per key otherwise). Checksum headers are sent
only where the API requires them, since some stores reject the newer ones; the sha256 in each manifest
checks the data end to end anyway.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import IO, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from models.backup import S3Location, backup_id_of
from models.errors import StorageError, StorageFeatureMissingError
from tasks.storage.base import StoredObject

MIN_PART_BYTES = 16 * 1024 * 1024
MAX_PARTS = 10_000
#: Room for a dump that grows beyond the estimate before the part limit bites.
SIZE_HEADROOM = 4
#: How stores say they lack an operation, or that these credentials may not use it.
_UNSUPPORTED_CODES = frozenset({"NotImplemented", "XNotImplemented", "MethodNotAllowed", "AccessDenied"})
_UNSUPPORTED_STATUSES = frozenset({403, 405, 501})


def unsupported(error: ClientError) -> bool:
    """Whether *error* says the store (or the credentials) do not offer the operation at all."""
    code = error.response.get("Error", {}).get("Code")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _UNSUPPORTED_CODES or status in _UNSUPPORTED_STATUSES


def part_size(expected_size: int | None) -> int:
    """The multipart part size: at least 16 MiB, and large enough for 4x the expected size in 10,000 parts."""
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
    ) -> None:
        self.location = location
        self.page_size = page_size
        self.endpoint_url = endpoint_url
        self.max_concurrency = max_concurrency
        self._batch_delete = True  # until the store says it has no DeleteObjects
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

    def put_stream(self, key: str, source: IO[bytes], expected_size: int | None = None) -> None:
        size = part_size(expected_size)
        config = TransferConfig(
            multipart_threshold=size,
            multipart_chunksize=size,
            max_concurrency=self.max_concurrency,
            use_threads=True,
        )
        try:
            self.client.upload_fileobj(source, self.location.bucket, self._key(key), Config=config)
        except (BotoCoreError, ClientError) as error:
            raise self._failed(f"upload {key} to", error) from None

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        try:
            self.client.put_object(
                Bucket=self.location.bucket, Key=self._key(key), Body=data, Metadata=dict(metadata or {})
            )
        except (BotoCoreError, ClientError) as error:
            raise self._failed(f"write {key} to", error) from None

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

    def sweep_incomplete_uploads(self, older_than: datetime) -> int:
        paginator = self.client.get_paginator("list_multipart_uploads")
        swept = 0
        try:
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self._key("")):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < older_than and self._last_activity(upload) < older_than:
                        self.client.abort_multipart_upload(
                            Bucket=self.location.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        swept += 1
        except ClientError as error:
            if unsupported(error):
                raise StorageFeatureMissingError(
                    f"{self.describe()} does not allow listing multipart uploads (ListMultipartUploads)",
                    detail=str(error).splitlines()[0],
                    hint="interrupted uploads are not swept here; a lifecycle rule with "
                    "AbortIncompleteMultipartUpload on the bucket does the same",
                ) from None
            raise self._failed("sweep incomplete uploads in", error) from None
        except BotoCoreError as error:
            raise self._failed("sweep incomplete uploads in", error) from None
        return swept
