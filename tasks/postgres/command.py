"""The one wrapper through which every PostgreSQL program (initdb, pg_ctl, pg_dump, ...) is run.

After Barman's command wrapper: an argument list (never a shell), ``--no-password`` so a missing
password fails at once instead of prompting, ``LANG=C`` so messages are parseable English, stderr
streamed line by line to the logger, stdout streamed to a caller's sink where it carries data, and a
typed :class:`~models.errors.CommandError` with the exit code and the tail of stderr on failure. The
child runs in its own process group so a cancelled run takes the child's children down with it; it
dies with dbops however dbops ends, SIGKILL included (the kernel's parent-death signal), so a killed
worker never leaves a pg_restore finishing a restore nobody waits for; and it
inherits none of the caller's libpq variables: only the connection string and the environment the
caller passes (:func:`tasks.postgres.libpq.child_environment`) decide where it connects.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from models.errors import CommandError
from tasks.postgres.libpq import inherited_environment

#: Programs that accept --no-password; the rest (initdb, pg_ctl, postgres) never prompt.
_TAKES_NO_PASSWORD = frozenset(
    {
        "pg_dump",
        "pg_dumpall",
        "pg_restore",
        "psql",
        "createdb",
        "dropdb",
        "vacuumdb",
        "reindexdb",
        "clusterdb",
        "pg_basebackup",
        "pg_amcheck",
    }
)
_STDERR_TAIL_LINES = 20
#: util-linux's setpriv sets the parent-death signal (PR_SET_PDEATHSIG) and then execs the program,
#: so nothing of Python's runs between fork and exec; without it, a prctl call in the child does.
_SETPRIV = shutil.which("setpriv")
_PR_SET_PDEATHSIG = 1
_CHUNK_BYTES = 1 << 20

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandResult:
    program: str
    returncode: int
    stderr_tail: str


class PgProcess:
    """A running PostgreSQL program, started the one way this project starts them.

    The caller may read ``stdout`` (a dump streaming out) or write ``stdin`` (a dump streaming
    in); stderr is always pumped to the logger, its tail kept for the error. :meth:`finish` waits
    and raises :class:`CommandError` unless the program exited 0; leaving the ``with`` block early
    kills the program and its children.
    """

    def __init__(
        self,
        program: Path,
        arguments: Sequence[str],
        *,
        environment: Mapping[str, str] | None = None,
        stdin: int | IO[bytes] | None = subprocess.DEVNULL,
        stdout: int | IO[bytes] | None = subprocess.PIPE,
        run_as_user: str | None = None,
        timeout_seconds: float | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.name = program.name
        self.timeout_seconds = timeout_seconds
        self._log = logger or _log
        argv = [str(program)]
        if list(arguments) != ["--version"]:
            if self.name in _TAKES_NO_PASSWORD:
                argv.append("--no-password")
            if self.name == "psql":
                argv.append("--no-psqlrc")
        argv.extend(arguments)
        self._log.debug("running %s", " ".join(argv))
        launcher = [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []
        try:
            self.process = subprocess.Popen(
                [*launcher, *argv],
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env={
                    **inherited_environment(),
                    **(environment or {}),
                    "LANG": "C",
                    "LC_ALL": "C",
                    "LC_MESSAGES": "C",
                },
                user=run_as_user,
                start_new_session=True,
                preexec_fn=None if _SETPRIV else _die_with_parent,
            )
        except (OSError, ValueError) as error:
            raise CommandError(
                f"could not start {self.name}",
                program=self.name,
                returncode=-1,
                detail=f"{program}: {getattr(error, 'strerror', None) or error}",
                hint="check DBOPS_PG_BINDIR or the PostgreSQL client installation",
            ) from None
        self.tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self._stderr = threading.Thread(
            target=_pump_lines, args=(self.process.stderr, self._log, logging.INFO, self.tail), daemon=True
        )
        self._stderr.start()
        # A wall-clock bound that holds whoever is blocked on the child (a reader of its stdout, an
        # upload fed from it): past it the child and its children are killed, and finish() says why.
        self._expired = threading.Event()
        self._deadline: threading.Timer | None = None
        if timeout_seconds is not None:
            self._deadline = threading.Timer(timeout_seconds, self._expire)
            self._deadline.daemon = True
            self._deadline.start()

    def _expire(self) -> None:
        if self.process.poll() is None:
            self._expired.set()
            _kill_process_group(self.process)

    @property
    def stdout(self) -> IO[bytes]:
        assert self.process.stdout is not None, "started without a stdout pipe"
        return self.process.stdout

    @property
    def stdin(self) -> IO[bytes]:
        assert self.process.stdin is not None, "started without a stdin pipe"
        return self.process.stdin

    def __enter__(self) -> PgProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if self.process.poll() is None:
            # Cancelled or failed on our side: never leave the child (or its children) running.
            _kill_process_group(self.process)
        self._stderr.join(timeout=5)

    def finish(self, timeout_seconds: float | None = None) -> CommandResult:
        """Wait for the program (at most *timeout_seconds* more, besides the bound it started with)."""
        try:
            returncode = self.process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            _kill_process_group(self.process)
            self._stderr.join(timeout=5)
            raise self._timed_out(timeout_seconds) from None
        if self._deadline is not None:
            self._deadline.cancel()
        self._stderr.join(timeout=5)
        if self._expired.is_set():
            raise self._timed_out(self.timeout_seconds)
        stderr_tail = "\n".join(self.tail)
        if returncode != 0:
            # The line that says what went wrong, not the "detail:"/"hint:" lines that follow it.
            lines = [line for line in self.tail if line.strip()]
            errors = [line for line in lines if "error:" in line.lower() or "fatal:" in line.lower()]
            last_line = (errors or lines or [""])[-1]
            raise CommandError(
                f"{self.name} failed with exit code {returncode}",
                program=self.name,
                returncode=returncode,
                stderr_tail=stderr_tail,
                detail=last_line or None,
            )
        return CommandResult(program=self.name, returncode=returncode, stderr_tail=stderr_tail)

    def _timed_out(self, seconds: float | None) -> CommandError:
        return CommandError(
            f"{self.name} did not finish within {seconds or 0:g} s and was stopped",
            program=self.name,
            returncode=-1,
            stderr_tail="\n".join(self.tail),
            hint="find what it was waiting for (pg_stat_activity, the messages above), or raise "
            "DBOPS_COMMAND_TIMEOUT_SECONDS",
        )


def run_pg_program(
    program: Path,
    arguments: Sequence[str],
    *,
    environment: Mapping[str, str] | None = None,
    stdout: IO[bytes] | None = None,
    run_as_user: str | None = None,
    timeout_seconds: float | None = None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> CommandResult:
    """Run *program* with *arguments* to completion; raise :class:`CommandError` unless it exits 0.

    Secrets must reach the child through *environment* (``PGPASSFILE``), never *arguments*: the
    argument list is logged, and visible to every user of the machine in ``ps``.
    """
    log = logger or _log
    # A sink with a file descriptor (a file, a pipe) is handed to the child directly; any other
    # writable (a compressor, a hasher, an upload stream) is fed from a pipe in bounded chunks.
    direct_sink = stdout is not None and _has_file_descriptor(stdout)
    with PgProcess(
        program,
        arguments,
        environment=environment,
        stdout=stdout if direct_sink else subprocess.PIPE,
        run_as_user=run_as_user,
        timeout_seconds=timeout_seconds,
        logger=log,
    ) as running:
        if stdout is None:
            pump = threading.Thread(
                target=_pump_lines, args=(running.stdout, log, logging.DEBUG, None), daemon=True
            )
        elif not direct_sink:
            pump = threading.Thread(target=_pump_bytes, args=(running.stdout, stdout), daemon=True)
        else:
            pump = None
        if pump is not None:
            pump.start()
        try:
            return running.finish()
        finally:
            if pump is not None:
                pump.join(timeout=5)


def _pump_lines(
    stream: IO[bytes] | None,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
    level: int,
    tail: deque[str] | None,
) -> None:
    if stream is None:
        return
    with stream:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            log.log(level, "%s", line)
            if tail is not None:
                tail.append(line)


def _pump_bytes(stream: IO[bytes] | None, sink: IO[bytes]) -> None:
    if stream is None:
        return
    with stream:
        while chunk := stream.read(_CHUNK_BYTES):
            sink.write(chunk)


def _has_file_descriptor(stream: IO[bytes]) -> bool:
    try:
        stream.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return False
    return True


_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """In the child, before exec: receive SIGKILL when the thread that started it ends."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _kill_process_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
