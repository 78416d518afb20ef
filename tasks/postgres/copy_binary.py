"""Read the text column of a ``COPY ... TO STDOUT (FORMAT binary)`` stream, whatever the chunking.

Binary COPY sends each value as is, length-prefixed, where the text format would escape backslashes
and newlines; one value per message also spares the reader a Python call per row when the server
aggregates many rows into each value.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = len(SIGNATURE) + 8  # flags, then the length of the header extension


class BinaryCopyReader:
    """Feed it the stream's chunks; it yields each tuple's single (non-null) value."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._header_read = False
        self.finished = False

    def feed(self, chunk: bytes | bytearray | memoryview) -> Iterator[bytes]:
        self._buffer += chunk
        if not self._header_read:
            if len(self._buffer) < _HEADER:
                return
            if bytes(self._buffer[: len(SIGNATURE)]) != SIGNATURE:
                raise ValueError("not a binary COPY stream")
            (extension,) = struct.unpack_from("!I", self._buffer, len(SIGNATURE) + 4)
            if len(self._buffer) < _HEADER + extension:
                return
            del self._buffer[: _HEADER + extension]
            self._header_read = True
        offset = 0
        while len(self._buffer) - offset >= 2:
            (fields,) = struct.unpack_from("!h", self._buffer, offset)
            if fields == -1:
                self.finished = True
                offset += 2
                break
            if fields != 1:
                raise ValueError(f"expected one column per row, got {fields}")
            if len(self._buffer) - offset < 6:
                break
            (length,) = struct.unpack_from("!i", self._buffer, offset + 2)
            if length < 0:
                raise ValueError("unexpected NULL value")
            if len(self._buffer) - offset < 6 + length:
                break
            yield bytes(self._buffer[offset + 6 : offset + 6 + length])
            offset += 6 + length
        del self._buffer[:offset]
