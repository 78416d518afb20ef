"""Stream plumbing for backups: every stage is a readable stream pulling from the one before.

pg_dump's stdout -> compression (zstd in-process and multi-threaded, or gzip) -> optional age
encryption -> sha256 and byte counting -> the object store. Nothing is spooled to disk, memory is a
few buffers per stage, and a failure anywhere upstream surfaces as an exception from ``read()``, so the
store aborts the upload instead of completing a truncated object.
"""

from __future__ import annotations

import abc
import hashlib
import io
import os
import threading
import zlib
from collections.abc import Callable
from typing import IO

import zstandard

from models.compression import Compression

CHUNK = 1 << 20


class ReaderBase(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read_chunk(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    @abc.abstractmethod
    def read_chunk(self, size: int) -> bytes:
        """Up to *size* bytes; empty only at the end of the stream."""

    def buffered(self) -> io.BufferedReader:
        return io.BufferedReader(self, CHUNK)


class CheckedSource(ReaderBase):
    """The producer's output; at its end, *finish* must succeed or the read raises.

    *finish* is where the producer (pg_dump) is waited for: a non-zero exit turns the stream's end into
    an error, so a truncated dump can never look like a complete one. *on_chunk* sees every chunk
    (byte counting, progress, the dump check).
    """

    def __init__(
        self, source: IO[bytes], finish: Callable[[], object], on_chunk: Callable[[bytes], None]
    ) -> None:
        self._source = source
        self._finish = finish
        self._on_chunk = on_chunk
        self._done = False

    def read_chunk(self, size: int) -> bytes:
        if self._done:
            return b""
        data = self._source.read(min(size, CHUNK))
        if data:
            self._on_chunk(data)
            return data
        self._done = True
        self._finish()
        return b""


class Hashing(ReaderBase):
    """Counts and hashes exactly the bytes handed to the store."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def read_chunk(self, size: int) -> bytes:
        data = self._source.read(size)
        self.sha256.update(data)
        self.bytes += len(data)
        return data

    def drain(self) -> None:
        """Hash the rest of the source, unread by whatever consumed this stream."""
        while self.read_chunk(CHUNK):
            continue


class _Gzip(ReaderBase):
    def __init__(self, source: IO[bytes], level: int) -> None:
        self._source = source
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        self._pending = b""
        self._flushed = False

    def read_chunk(self, size: int) -> bytes:
        while not self._pending and not self._flushed:
            data = self._source.read(CHUNK)
            if data:
                self._pending = self._compressor.compress(data)
            else:
                self._pending = self._compressor.flush()
                self._flushed = True
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


class Produced(ReaderBase):
    """The read end of a pipe fed by *produce* in a thread; its failure becomes this stream's failure."""

    def __init__(self, produce: Callable[[IO[bytes]], None]) -> None:
        read_end, write_end = os.pipe()
        self._reader = os.fdopen(read_end, "rb")
        self._error: BaseException | None = None

        def run() -> None:
            with os.fdopen(write_end, "wb") as writer:
                try:
                    produce(writer)
                except BaseException as error:  # handed to the reading side
                    self._error = error

        self._thread = threading.Thread(target=run, daemon=True, name="stream-producer")
        self._thread.start()

    def read_chunk(self, size: int) -> bytes:
        data = self._reader.read(size)
        if not data:
            self._thread.join()
            if self._error is not None:
                raise self._error
        return data

    def close(self) -> None:
        self._reader.close()
        super().close()


def compress(source: IO[bytes], compression: Compression, level: int, threads: int) -> IO[bytes]:
    if compression is Compression.ZSTD:
        compressor = zstandard.ZstdCompressor(level=level, threads=threads)
        return io.BufferedReader(compressor.stream_reader(source, read_size=CHUNK), CHUNK)
    if compression is Compression.GZIP:
        return _Gzip(source, level).buffered()
    return source


def encrypt(source: IO[bytes], recipients: list[str]) -> IO[bytes]:
    """age encryption to *recipients*, streaming; ``age -d -i KEY`` decrypts it, nothing of ours needed."""
    import pyrage

    parsed = [pyrage.x25519.Recipient.from_str(recipient) for recipient in recipients]
    return Produced(lambda writer: pyrage.encrypt_io(source, writer, parsed)).buffered()
