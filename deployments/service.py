"""A long-lived process that stops within ``STOP_DEADLINE_SECONDS`` of SIGTERM, as a container expects.

The event loop runs on a thread of its own and the main thread only handles signals. Prefect's
runner installs its own SIGTERM handler when it starts on the main thread, and that handler pauses
nothing only if the API answers in time; on another thread it leaves the signals to this module.

On SIGTERM (or SIGINT) the loop is asked to stop, which cancels the runs in flight and closes the
runner (``deployments.serving``). A stop that needs the API can wait on the client's retries when the
API is down, so a watchdog ends the process at the deadline whatever it is doing then: it kills every
process this one started (flow runs and their ``pg_*`` children) and exits with status 1, which says
the stop was forced. A stop that had to kill a flow run the runner left behind exits 1 too; a clean
stop exits 0 well before the deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import FrameType
from typing import Any

logger = logging.getLogger("dbops.serve")

#: Docker's and Kubernetes' default grace is 10 s before SIGKILL; this leaves a margin inside it.
STOP_DEADLINE_SECONDS = 9.0

Main = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def run_until_signalled(main: Main) -> int:
    """Run ``main(stop)`` until it returns; SIGTERM or SIGINT sets *stop*. Returns the exit status."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def run_loop() -> None:
        try:
            loop.run_until_complete(main(stop))
        except BaseException as error:  # reported by the main thread, which owns the exit status
            failure.append(error)
        finally:
            loop.close()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            return
        name = signal.Signals(signum).name
        logger.info("%s received: stopping (at most %g s)", name, STOP_DEADLINE_SECONDS)
        loop.call_soon_threadsafe(stop.set)
        watchdog = threading.Timer(STOP_DEADLINE_SECONDS, _force_exit)
        watchdog.daemon = True
        watchdog.start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    worker = threading.Thread(target=run_loop, name="dbops-serve", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(timeout=0.5)  # short joins, so the signal handlers run promptly
    # A runner cancelled before it could close (the API down) may leave a flow run behind, and an
    # orphan pg_dump must not outlive the service that started it.
    left = kill_descendants(os.getpid())
    if left:
        logger.warning("killed %d processes the runner left running", left)
    if failure:
        logger.error("dbops serve failed: %s", failure[0], exc_info=failure[0])
        return 1
    logger.info("dbops serve stopped")
    return 1 if left else 0


def end_process(status: int) -> None:
    """Exit with *status* now, skipping the interpreter's exit handlers and finalisation.

    Prefect's (sending the last buffered logs and events, closing clients) wait on the API, and with
    it down they once held a stopped service for seconds past the deadline, at a stage where the
    watchdog thread can no longer run. This service's own log lines are on stderr already (a stream
    handler writes each line as it comes).
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)


def _force_exit() -> None:
    killed = kill_descendants(os.getpid())
    logger.error(
        "dbops serve did not stop within %g s; killed %d child processes and exiting",
        STOP_DEADLINE_SECONDS,
        killed,
    )
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(1)  # past the deadline: no atexit handler may wait on an API that is down


def kill_descendants(pid: int) -> int:
    """SIGKILL every live descendant of *pid*; returns how many."""
    killed = 0
    for child in descendants(pid):
        try:
            os.kill(child, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


def descendants(pid: int) -> list[int]:
    """Every process below *pid*, read from ``/proc``: the flow runs' ``pg_*`` children run in
    sessions of their own, which a process group would miss."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    pending, found = list(children.get(pid, [])), []
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children.get(child, []))
    return found
