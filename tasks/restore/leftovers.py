"""What killed runs leave behind, and the sweep that removes it.

A worker can die at any instruction (OOM, preemption, a redeploy). A rehearsal or restore killed
mid-way leaves a production-sized scratch or ``_restoring_`` database and a dump-sized work directory;
every successful swap leaves the database it set aside. The sweep runs at the start of every
rehearsal and restore (and the set-aside expiry in the weekly maintenance):

- an interrupted sequence (a swap, rollback or in-place restore whose run is gone) is finished or
  undone first (:mod:`tasks.restore.journal`), and a database that carries one is never dropped;
- a scratch or restoring copy goes when its mark says dbops made it, its run is gone (nobody holds
  the run's lock, :mod:`tasks.restore.runs`), no session is connected, and no approval holds it
  (``held_until``). Its age does not matter: a live run's copy stays however old, a dead one's goes
  at once;
- set-aside and rolled-back copies go once older than ``DBOPS_RESTORE_KEEP_SET_ASIDE_DAYS``;
- a copy of another database goes only under that database's guard, so no job on it runs meanwhile;
- a work directory goes when the process that made it is gone.

A database without the mark, or with a session connected, is never dropped: it is reported. Nothing
here fails the job it tidies up for: errors become lines in the report.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError

from models.errors import DbopsError
from models.marks import DbopsDatabase, MarkKind, SweepReport
from models.settings import Settings
from tasks.postgres.engine import make_engine, open_connection, quote_identifier
from tasks.postgres.guard import try_guard
from tasks.restore.marks import MarkedDatabase, marked_databases
from tasks.restore.recovery import recover_others

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
_log = logging.getLogger(__name__)
RUN_FILE = ".dbops-run.json"
_TEMPORARY = frozenset({MarkKind.SCRATCH, MarkKind.RESTORING})
_KEPT_FOR_ROLLBACK = frozenset({MarkKind.SET_ASIDE, MarkKind.ROLLED_BACK})
#: Names a dbops copy would have; used only to report look-alikes that carry no mark.
_LOOK_ALIKES = text("""
    SELECT datname FROM pg_database
    WHERE (datname LIKE 'rehearsal\\_%' OR datname LIKE '%\\_restoring\\_%'
           OR datname LIKE '%\\_pre\\_restore\\_%')
      AND coalesce(shobj_description(oid, 'pg_database'), '') NOT LIKE 'dbops: %'
    ORDER BY datname
""")


def dbops_databases(server: URL, settings: Settings) -> list[DbopsDatabase]:
    """Every database dbops made on *server*, with its size, age and connected sessions."""
    engine = make_engine(server, settings, purpose="status")
    try:
        with open_connection(engine) as connection:
            return [_listed(found) for found in marked_databases(connection)]
    finally:
        engine.dispose()


def sweep(
    server: URL,
    settings: Settings,
    *,
    run: str,
    held: str | None = None,
    temporary: bool = True,
    set_aside: bool = True,
    logger: Logger | None = None,
) -> SweepReport:
    """Drop what gone runs left on *server* and in the work directory; never raises for housekeeping.

    *held* names the database whose guard the caller holds: its copies need no guard of their own.
    """
    log = logger or _log
    report = SweepReport()
    now = datetime.now(UTC)
    try:
        report.recovered = recover_others(server, settings, held, log)
        engine = make_engine(server, settings, purpose="sweep")
        try:
            with open_connection(engine, autocommit=True) as connection:
                for found in marked_databases(connection):
                    if _due(found, run, now, settings, temporary=temporary, set_aside=set_aside):
                        _drop_guarded(server, settings, connection, found, held, now, report, log)
                    elif found.sessions and found.mark.kind in _TEMPORARY and found.mark.run != run:
                        _leave(
                            report, log, f"{found.name}: {found.sessions} session(s) connected, not dropped"
                        )
                for (name,) in connection.execute(_LOOK_ALIKES):
                    _leave(
                        report, log, f"{name}: named like a dbops copy but carries no dbops mark, not dropped"
                    )
        finally:
            engine.dispose()
    except DbopsError as error:
        _leave(report, log, f"the sweep of {server.host}:{server.port} stopped: {error.one_line()}")
    if temporary:
        _sweep_directories(settings, now, report, log)
    return report


def mark_work_directory(directory: Path, run: str) -> None:
    """Say which process owns *directory*, so a later sweep can tell when it is gone."""
    owner = {
        "run": run,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": _process_start(os.getpid()),
    }
    (directory / RUN_FILE).write_text(json.dumps(owner))


def _due(
    found: MarkedDatabase, run: str, now: datetime, settings: Settings, *, temporary: bool, set_aside: bool
) -> bool:
    if found.mark.run == run or found.sessions or found.mark.journal is not None:
        return False
    if temporary and found.mark.kind in _TEMPORARY:
        return not found.alive and not (found.mark.held_until and found.mark.held_until > now)
    if set_aside and found.mark.kind in _KEPT_FOR_ROLLBACK:
        return now - found.mark.created > timedelta(days=settings.restore_keep_set_aside_days)
    return False


def _drop_guarded(
    server: URL,
    settings: Settings,
    connection: Connection,
    found: MarkedDatabase,
    held: str | None,
    now: datetime,
    report: SweepReport,
    log: Logger,
) -> None:
    """Drop *found* under the guard of the database it stands for, unless the caller holds that one."""
    target = found.mark.target
    if target is None or target == held:
        _drop(connection, found, now, report, log)
        return
    with try_guard(server, settings, target, "sweep") as guard:
        if guard is None:
            _leave(report, log, f"{found.name}: a dbops job on {target} holds its guard, not dropped")
            return
        _drop(connection, found, now, report, log)


def _drop(
    connection: Connection, found: MarkedDatabase, now: datetime, report: SweepReport, log: Logger
) -> None:
    try:
        # No FORCE: a session that arrived since the check makes the drop fail, and it is reported.
        connection.exec_driver_sql(f"DROP DATABASE {quote_identifier(found.name)}")
    except DBAPIError as error:
        reason = str(error.orig).splitlines()[0] if error.orig is not None else str(error)
        _leave(report, log, f"{found.name}: could not be dropped ({reason})")
        return
    listed = _listed(found)
    report.dropped.append(listed)
    log.warning(
        "dropped %s %s: %.1f MB, %s old, made by run %s",
        found.mark.kind.value,
        found.name,
        found.bytes / 1e6,
        _age(now - found.mark.created),
        found.mark.run,
    )


def _sweep_directories(settings: Settings, now: datetime, report: SweepReport, log: Logger) -> None:
    root = settings.effective_restore_work_dir
    if not root.is_dir():
        return
    for directory in sorted(root.glob("restore-*")):
        try:
            owner = json.loads((directory / RUN_FILE).read_text())
        except (OSError, ValueError):
            owner = None
        modified = datetime.fromtimestamp(directory.stat().st_mtime, UTC)
        if _alive(owner) or (
            owner is None and now - modified < timedelta(minutes=settings.stale_after_minutes)
        ):
            continue
        size = sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())
        shutil.rmtree(directory, ignore_errors=True)
        report.removed_directories.append(str(directory))
        log.warning(
            "removed work directory %s: %.1f MB, %s old, made by run %s",
            directory,
            size / 1e6,
            _age(now - modified),
            owner["run"] if owner else "unknown",
        )


def _alive(owner: dict[str, object] | None) -> bool:
    """Whether the process that owns a work directory still runs (on another host: assumed so)."""
    if owner is None:
        return False
    if owner.get("host") != socket.gethostname():
        return True
    pid = owner.get("pid")
    return isinstance(pid, int) and _process_start(pid) == owner.get("started")


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: a recycled pid has another."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])


def _listed(found: MarkedDatabase) -> DbopsDatabase:
    journal = found.mark.journal
    return DbopsDatabase(
        name=found.name,
        kind=found.mark.kind,
        target=found.mark.target,
        backup=found.mark.backup,
        run=found.mark.run,
        created=found.mark.created,
        bytes=found.bytes,
        sessions=found.sessions,
        alive=found.alive,
        interrupted=f"{journal.sequence.value} of {journal.target} stopped before '{journal.step}'"
        if journal is not None and found.interrupted
        else None,
    )


def _leave(report: SweepReport, log: Logger, line: str) -> None:
    report.left.append(line)
    log.warning("%s", line)


def _age(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return (
        f"{minutes:.0f} min"
        if minutes < 120
        else f"{minutes / 60:.1f} h"
        if minutes < 2880
        else f"{minutes / 1440:.1f} days"
    )
