"""gzip in a thread of its own, fed in blocks, so compression overlaps whatever produces the input.

zlib releases the GIL while it compresses, so on two cores a COPY can keep streaming rows in while
the previous megabyte is compressed. Memory is bounded by a few queued blocks plus the compressed
output; the output is deterministic (no timestamp, no file name), so the same input always gives the
same bytes.
"""

from __future__ import annotations

import gzip
import io
import queue
import threading

BLOCK_BYTES = 1 << 20
_QUEUED_BLOCKS = 8


class BackgroundGzip:
    def __init__(self, level: int) -> None:
        self._output = io.BytesIO()
        self._gzip = gzip.GzipFile(fileobj=self._output, mode="wb", compresslevel=level, mtime=0)
        self._blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED_BLOCKS)
        self._pending: list[bytes | bytearray | memoryview] = []
        self._pending_bytes = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._compress, daemon=True, name="gzip")
        self._thread.start()

    def __enter__(self) -> BackgroundGzip:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread.is_alive():
            self._blocks.put(None)
            self._thread.join()

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        self._pending.append(chunk)  # the producer hands over a fresh buffer per chunk: no copy
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= BLOCK_BYTES:
            self._hand_over()

    def finish(self) -> bytes:
        """All input compressed: the complete gzip member."""
        self._hand_over()
        self._blocks.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._gzip.close()
        return self._output.getvalue()

    def _hand_over(self) -> None:
        if self._pending:
            self._blocks.put(b"".join(self._pending))
            self._pending, self._pending_bytes = [], 0

    def _compress(self) -> None:
        while (block := self._blocks.get()) is not None:
            if self._error is None:
                try:
                    self._gzip.write(block)
                except BaseException as error:  # handed to finish()
                    self._error = error
