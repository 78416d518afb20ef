"""How far a backup has got: bytes dumped, in all and per part, against the database's size.

Apart from the dump so that the reporters (a terminal line, a flow's progress artifact) read it
without the dump machinery.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Progress:
    """Bytes of the dump so far, in all and per part, against the database size estimate; read by
    progress reporters. Parts stream from several threads at once, hence the lock."""

    estimated_bytes: int
    dump_bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    parts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def throughput(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.dump_bytes / elapsed if elapsed > 0 else 0.0

    def add(self, part: str, size: int) -> None:
        with self._lock:
            self.dump_bytes += size
            self.parts[part] = self.parts.get(part, 0) + size

    def describe_parts(self) -> str:
        """``data-1 120 MB, data-2 98 MB, ...`` for a multi-part backup; empty for one object."""
        if len(self.parts) < 2:
            return ""
        with self._lock:
            shown = dict(self.parts)
        return ", ".join(f"{name} {size / 1e6:,.0f} MB" for name, size in shown.items())
