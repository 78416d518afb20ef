"""One streamed S3 multipart upload whose parts grow as the upload does.

S3 takes at most 10,000 parts, of at most 5 GiB each, for an object of at most 5 TiB. A fixed part
size chosen from an estimate caps the object at 10,000 times that size: 160 GiB for 16 MiB parts, which
is what a stale estimate (a table never analysed has 0 pages) would choose. Here the part size starts
from the estimate and doubles every :data:`PARTS_PER_SIZE` parts, so the 10,000 parts hold more than
5 TiB from any first size; memory stays bounded by the current part size times the concurrency, and
only an upload that has already grown large uses large parts.

The source is read a part at a time; parts upload concurrently, at most *concurrency* in flight. A
source shorter than one part is written with one PutObject. If reading the source or any request
fails, the upload is aborted, so no partial object ever becomes visible, and the error is raised as
it came (the source's own error, e.g. a failed pg_dump, or botocore's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

MIN_PART_BYTES = 16 * 1024 * 1024
MAX_PART_BYTES = 5 * 1024**3
MAX_PARTS = 10_000
#: Parts of one size before the size doubles.
PARTS_PER_SIZE = 1_000


def part_sizes(first: int, parts_per_size: int = PARTS_PER_SIZE) -> Iterator[int]:
    """The size of each of the (at most 10,000) parts of one upload, in order."""
    for index in range(MAX_PARTS):
        yield min(MAX_PART_BYTES, first * 2 ** (index // parts_per_size))


def _read_exactly(source: IO[bytes], size: int) -> bytes:
    """*size* bytes of *source*, fewer only at its end."""
    chunks, remaining = [], size
    while remaining > 0:
        chunk = source.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class MultipartUpload:
    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        first_part_size: int,
        concurrency: int,
        extra: dict[str, Any],
        parts_per_size: int = PARTS_PER_SIZE,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._first = first_part_size
        self._concurrency = max(1, concurrency)
        self._extra = extra
        self._parts_per_size = parts_per_size
        self._checksum = extra.get("ChecksumAlgorithm")

    def run(self, source: IO[bytes]) -> None:
        sizes = part_sizes(self._first, self._parts_per_size)
        first = _read_exactly(source, next(sizes))
        if len(first) < self._first:  # the whole object in one request
            self._client.put_object(Bucket=self._bucket, Key=self._key, Body=first, **self._extra)
            return
        upload_id = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key, **self._extra)[
            "UploadId"
        ]
        try:
            parts = self._upload_parts(upload_id, first, source, sizes)
            self._client.complete_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(BotoCoreError, ClientError):
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=upload_id)
            raise

    def _upload_parts(
        self, upload_id: str, first: bytes, source: IO[bytes], sizes: Iterator[int]
    ) -> list[dict[str, Any]]:
        in_flight: list[Future[dict[str, Any]]] = []
        done: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="s3-part") as pool:
            try:
                data, number = first, 1
                while data:
                    if len(in_flight) >= self._concurrency:  # bound the memory: wait for the oldest
                        done.append(in_flight.pop(0).result())
                    in_flight.append(pool.submit(self._upload_part, upload_id, number, data))
                    size = next(sizes, None)
                    if size is None:
                        if _read_exactly(source, 1):
                            raise ValueError(f"the stream outgrew the {MAX_PARTS} parts of one upload")
                        break
                    data, number = _read_exactly(source, size), number + 1
                done.extend(future.result() for future in in_flight)
            finally:
                for future in in_flight:
                    future.cancel()
        return done

    def _upload_part(self, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        checksum = {"ChecksumAlgorithm": self._checksum} if self._checksum else {}
        response = self._client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=upload_id, PartNumber=number, Body=data, **checksum
        )
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if self._checksum:
            part[f"Checksum{self._checksum}"] = response[f"Checksum{self._checksum}"]
        return part
