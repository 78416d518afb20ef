"""The one wrapper through which every PostgreSQL program (initdb, pg_ctl, pg_dump, ...) is run.

After Barman's command wrapper: an argument list (never a shell), ``--no-password`` so a missing
password fails at once instead of prompting, ``LANG=C`` so messages are parseable English, stderr
streamed line by line to the logger, stdout streamed to a caller's sink where it carries data, and a
typed :class:`~models.errors.CommandError` with the exit code and the tail of stderr on failure. The
child runs in its own process group so a cancelled run takes the child's children down with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from models.errors import CommandError

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
_CHUNK_BYTES = 1 << 20

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandResult:
    program: str
    returncode: int
    stderr_tail: str


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
    """Run *program* with *arguments*; raise :class:`CommandError` unless it exits 0.

    Secrets must reach the child through *environment* (``PGPASSFILE``), never *arguments*: the
    argument list is logged, and visible to every user of the machine in ``ps``.
    """
    log = logger or _log
    name = program.name
    argv = [str(program)]
    if name in _TAKES_NO_PASSWORD and list(arguments) != ["--version"]:
        argv.append("--no-password")
    if name == "psql" and list(arguments) != ["--version"]:
        argv.append("--no-psqlrc")
    argv.extend(arguments)
    child_environment = {**os.environ, **(environment or {}), "LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C"}
    log.debug("running %s", " ".join(argv))

    tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
    # A sink with a file descriptor (a file, a pipe) is handed to the child directly; any other
    # writable (a compressor, a hasher, an upload stream) is fed from a pipe in bounded chunks.
    direct_sink = stdout is not None and _has_file_descriptor(stdout)
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout if direct_sink else subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_environment,
            user=run_as_user,
            start_new_session=True,
        )
    except (OSError, ValueError) as error:
        raise CommandError(
            f"could not start {name}",
            program=name,
            returncode=-1,
            detail=f"{program}: {getattr(error, 'strerror', None) or error}",
            hint="check DBOPS_PG_BINDIR or the PostgreSQL client installation",
        ) from None

    readers = [
        threading.Thread(target=_pump_lines, args=(process.stderr, log, logging.INFO, tail), daemon=True)
    ]
    if stdout is None:
        readers.append(
            threading.Thread(target=_pump_lines, args=(process.stdout, log, logging.DEBUG, None), daemon=True)
        )
    elif not direct_sink:
        readers.append(threading.Thread(target=_pump_bytes, args=(process.stdout, stdout), daemon=True))
    for reader in readers:
        reader.start()
    try:
        returncode = process.wait(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        _kill_process_group(process)
        raise CommandError(
            f"{name} did not finish within {timeout_seconds:g} s and was stopped",
            program=name,
            returncode=-1,
            stderr_tail="\n".join(tail),
        ) from None
    except BaseException:
        # Cancellation (KeyboardInterrupt, a cancelled Prefect run): never leave the child running.
        _kill_process_group(process)
        raise
    finally:
        for reader in readers:
            reader.join(timeout=5)

    stderr_tail = "\n".join(tail)
    if returncode != 0:
        last_line = next((line for line in reversed(tail) if line.strip()), "")
        raise CommandError(
            f"{name} failed with exit code {returncode}",
            program=name,
            returncode=returncode,
            stderr_tail=stderr_tail,
            detail=last_line or None,
        )
    return CommandResult(program=name, returncode=returncode, stderr_tail=stderr_tail)


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


def _kill_process_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
