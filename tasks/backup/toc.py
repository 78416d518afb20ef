"""``pg_restore --list`` reading a dump as it streams to the store: proof, before the manifest is
written, that what was stored is a dump pg_restore can read, with table data in it."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading

from models.errors import BackupError, CommandError
from tasks.postgres.binaries import Program
from tasks.postgres.command import PgProcess


class DumpCheck:
    """``pg_restore --list`` reading the dump as it streams past: proof that it is a readable dump.

    pg_restore reads the header and table of contents, prints them and exits; chunks after that are
    dropped. The listing must contain table data, or the dump is useless however it ended.
    """

    def __init__(
        self,
        pg_restore: Program,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger],
        timeout_seconds: float,
    ) -> None:
        self._process = PgProcess(
            pg_restore.path, ["--list"], stdin=subprocess.PIPE, timeout_seconds=timeout_seconds, logger=log
        )
        self._listing = bytearray()
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()
        self._open = True

    def _collect(self) -> None:
        for chunk in iter(lambda: self._process.stdout.read(65536), b""):
            self._listing.extend(chunk)

    def __enter__(self) -> DumpCheck:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close_input()
        self._process.__exit__(*exc_info)

    @property
    def reading(self) -> bool:
        """Whether pg_restore still reads: False once it has read the table of contents and exited."""
        return self._open and self._process.process.poll() is None

    def feed(self, chunk: bytes) -> None:
        if not self._open:
            return
        try:
            self._process.stdin.write(chunk)
        except (BrokenPipeError, ValueError):
            self._open = False  # it has read what it needs and exited

    def _close_input(self) -> None:
        if self._open:
            self._open = False
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()

    @property
    def listing(self) -> str:
        """What pg_restore listed; complete once :meth:`verify` has returned."""
        return self._listing.decode("utf-8", "replace")

    def verify(self, *, require_data: bool = True) -> None:
        """Fail unless pg_restore read the dump, and (with *require_data*, as for every dump but a
        schema-only part) found table data in it."""
        self._close_input()
        try:
            self._process.finish(timeout_seconds=300)
        except CommandError as error:
            raise BackupError(
                "pg_restore cannot read the dump", detail=error.detail, hint="nothing was kept"
            ) from None
        self._reader.join(timeout=30)
        if require_data and b" TABLE DATA " not in self._listing:
            raise BackupError(
                "the dump's table of contents lists no table data, so it would restore no rows",
                hint="check the database (does it have tables?) and the pg_dump messages above",
            )
