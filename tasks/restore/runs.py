"""Which runs are alive: a run holds a session advisory lock of its own while it works.

A scratch or restoring copy belongs to the run that made it (its mark names the run). Whether the
sweep may drop it is decided by whether that run is alive, never by the copy's age: a restore may
spend hours downloading, or waiting for an operator, and a killed one may be minutes old. The lock
lives on the server's maintenance database, in a session that turns ``idle_session_timeout`` off; it
dies with the process, whatever kills it, so a dead run is one whose lock nobody holds.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, Engine

from models.settings import Settings
from tasks.postgres.engine import make_engine, open_connection
from tasks.postgres.guard import LONG_LIVED_SESSION, MAINTENANCE_DATABASE
from tasks.postgres.locks import held_advisory_keys, lock_key

_log = logging.getLogger(__name__)


def run_id() -> str:
    """Names the dbops run in the marks it leaves: host, process, and a token for this run."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def run_key(run: str) -> int:
    return lock_key(f"dbops.run:{run}")


class RunLease:
    """The lock that says run *run* is alive on one server, held until :meth:`release`."""

    def __init__(self, run: str, engine: Engine, connection: Connection) -> None:
        self.run, self._engine, self._connection = run, engine, connection

    def release(self) -> None:
        """Let the run's copies count as a dead run's; safe to call twice, never raises."""
        if self._connection.closed:
            return
        try:
            self._connection.close()  # ending the session releases the lock
        except Exception as error:  # housekeeping: the lock goes with the session either way
            _log.debug("closing run %s's lock session: %s", self.run, error)
        finally:
            self._engine.dispose()

    def __enter__(self) -> RunLease:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def hold_run(server: URL, settings: Settings, run: str) -> RunLease:
    """Take run *run*'s lock on *server*; every copy this run makes there is alive while it is held."""
    engine = make_engine(
        server.set(database=MAINTENANCE_DATABASE),
        settings,
        purpose="run",
        server_settings=LONG_LIVED_SESSION,
    )
    connection = open_connection(engine, autocommit=True)
    try:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": run_key(run)})
    except BaseException:
        connection.close()
        engine.dispose()
        raise
    return RunLease(run, engine, connection)


def alive_runs(connection: Connection, runs: set[str]) -> set[str]:
    """Those of *runs* whose lock is held on the server *connection* is on."""
    held = held_advisory_keys(connection)
    return {run for run in runs if run_key(run) in held}
