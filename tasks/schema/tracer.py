"""Apply pending revisions with a tracer: what each statement does to the data it runs on.

Each revision runs in its own transaction, as ``dbops migrate`` runs it on production. Around every
statement Alembic sends, the tracer reads, on the migration's own connection (reads of the
catalogue take no lock on a user table, so they change nothing they measure):

- the WAL insert position, before and after: the WAL the statement wrote;
- every relation's ``relfilenode``, before and after: a new one is a rewrite;
- the relation locks the migration's backend holds after it (``pg_locks``), each kept from the
  statement that first took it to the end of the revision's transaction, or for a statement run
  outside one (``autocommit_block()``), as an observer connection sampled them while it ran;
- the size of each relation it locked, before and after.

Meanwhile a probe per table tries, every 50 ms, what the application does: a read, and the lock a
write takes (``LOCK TABLE ... IN ROW EXCLUSIVE MODE``), in a transaction it rolls back, with a short
``lock_timeout``. The time the probes were blocked, per table, is how long the application would have
waited; it is attributed to the statement running when it happened (the last one until commit).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

from models.plan import ALLOWANCE, Blocked, LockHeld, RevisionTrace, StatementTrace
from models.schema import APPLIED_REVISIONS_TABLE
from models.settings import Settings
from tasks.postgres import driver
from tasks.postgres.engine import open_connection
from tasks.schema.migrate import _ALEMBIC_COMMANDS, alembic_config, current_revision, holding_migration_lock

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
_log = logging.getLogger(__name__)
PROBE_INTERVAL = 0.05

_FILENODES = """
    SELECT c.oid::bigint, c.relfilenode::bigint FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'm', 'i', 't') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%%'
"""
_OWN_LOCKS = """
    SELECT l.relation::bigint, l.mode FROM pg_locks AS l
    WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.relation >= 16384
"""
_SIZE = "SELECT pg_relation_size(%s::oid)"
_TABLES = """
    SELECT format('%%I.%%I', n.nspname, c.relname), n.nspname || '.' || c.relname FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_%%' AND c.relname <> 'alembic_version'
"""
_ROWS = """
    SELECT n.nspname || '.' || c.relname, greatest(c.reltuples, 0)::bigint FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
#: The strength of each lock mode, weakest first: a relation's strongest lock is reported.
_STRENGTH = [
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
]


@dataclass
class _Statement:
    sql: str
    started: float
    ended: float = 0.0
    rows: int | None = None
    wal_bytes: int = 0
    rewrites: list[int] = field(default_factory=list)
    locks: dict[int, str] = field(default_factory=dict)  # first taken here: relation -> strongest mode
    in_transaction: bool = True
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)


class _Recorder:
    """Listens on the migration connection and measures around each statement."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.statements: list[_Statement] = []
        self._held: dict[int, str] = {}
        self._sizes: dict[int, int] = {}
        self._before: tuple[int, dict[int, int]] = (0, {})
        self.sampler: _Sampler | None = None

    def _query(self, sql: str, parameters: Any = None) -> list[tuple[Any, ...]]:
        raw = self.connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            cursor.execute(sql, parameters)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def before(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if _ours(statement):
            return
        lsn = self._query("SELECT pg_current_wal_insert_lsn()::text")[0][0]
        self._before = (_lsn(lsn), dict(self._query(_FILENODES)))
        self.statements.append(_Statement(sql=statement.strip(), started=time.monotonic()))

    def after(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if _ours(statement):
            return
        current = self.statements[-1]
        current.ended = time.monotonic()
        current.rows = cursor.rowcount if cursor.rowcount is not None and cursor.rowcount >= 0 else None
        raw = self.connection.connection.dbapi_connection
        assert raw is not None
        current.in_transaction = raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        lsn = _lsn(self._query("SELECT pg_current_wal_insert_lsn()::text")[0][0])
        current.wal_bytes = max(0, lsn - self._before[0])
        nodes = dict(self._query(_FILENODES))
        current.rewrites = [
            oid for oid, node in self._before[1].items() if oid in nodes and nodes[oid] != node
        ]
        if not current.in_transaction:  # its locks ended with it: as the sampler saw them while it ran
            self._held = {}
            current.locks = self.sampler.seen(current.started, current.ended) if self.sampler else {}
            return
        for relation, mode in self._query(_OWN_LOCKS):
            if _stronger(mode, self._held.get(relation)):
                current.locks[relation] = mode
                self._held[relation] = mode
        for relation in current.locks:
            after = int(self._query(_SIZE, (relation,))[0][0] or 0)
            current.sizes[relation] = (self._sizes.get(relation, after), after)
            self._sizes[relation] = after

    def commit(self) -> None:
        self._held = {}

    def remember_sizes(self, sizes: dict[int, int]) -> None:
        self._sizes.update(sizes)


class _Sampler:
    """An observer session that samples the migration backend's relation locks every 20 ms: a
    statement run outside a transaction releases its locks before the tracer can read them."""

    _LOCKS = (
        "SELECT relation::bigint, mode FROM pg_locks WHERE pid = %s AND locktype = 'relation' "
        "AND granted AND relation >= 16384"
    )

    def __init__(self, url: URL, pid: int) -> None:
        self._url, self._pid = url, pid
        self._stop = threading.Event()
        self._samples: list[tuple[float, int, str]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with driver.connect(self._url, purpose="plan sampler", autocommit=True) as connection:
            while not self._stop.wait(0.02):
                moment = time.monotonic()
                for relation, mode in connection.execute(self._LOCKS, (self._pid,)).fetchall():
                    self._samples.append((moment, int(str(relation)), str(mode)))

    def seen(self, start: float, end: float) -> dict[int, str]:
        """The strongest mode of each relation sampled between *start* and *end*."""
        strongest: dict[int, str] = {}
        for moment, relation, mode in list(self._samples):
            if start <= moment <= end and _stronger(mode, strongest.get(relation)):
                strongest[relation] = mode
        return strongest


def _ours(statement: str) -> bool:
    """Bookkeeping, not the revision's: Alembic's version table, SQLAlchemy's catalogue reflection
    and the checksums of applied revisions."""
    return (
        "alembic_version" in statement
        or APPLIED_REVISIONS_TABLE in statement
        or statement.lstrip().startswith("SELECT pg_catalog.")
    )


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def _stronger(mode: str, than: str | None) -> bool:
    return than is None or _STRENGTH.index(mode) > _STRENGTH.index(than)


class _Probes:
    """A probe session per table, trying a read and a write's lock every 50 ms until stopped."""

    def __init__(self, url: URL, tables: list[tuple[str, str]]) -> None:
        self._url, self._tables = url, tables
        self._stop = threading.Event()
        self.blocked: dict[str, list[tuple[float, float]]] = {name: [] for _, name in tables}
        self._threads = [threading.Thread(target=self._probe, args=table, daemon=True) for table in tables]

    def __enter__(self) -> _Probes:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _probe(self, quoted: str, name: str) -> None:
        with driver.connect(self._url, purpose="plan probe", autocommit=False) as connection:
            since: float | None = None
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    connection.execute("SET LOCAL lock_timeout = '50ms'")
                    connection.execute(f"SELECT 1 FROM {quoted} LIMIT 1")
                    connection.execute(f"LOCK TABLE {quoted} IN ROW EXCLUSIVE MODE")
                    if since is not None:
                        self.blocked[name].append((since, started))
                        since = None
                except psycopg.errors.LockNotAvailable:
                    since = started if since is None else since
                finally:
                    connection.rollback()
                self._stop.wait(max(0.0, PROBE_INTERVAL - (time.monotonic() - started)))
            if since is not None:
                self.blocked[name].append((since, time.monotonic()))


@dataclass
class TracedUpgrade:
    from_revision: str | None
    to_revision: str | None
    revisions: list[RevisionTrace]
    rows: dict[str, int]


def trace_upgrade(
    url: URL,
    settings: Settings,
    *,
    script_location: Path | None = None,
    analyze: bool = False,
    log: Logger | None = None,
) -> TracedUpgrade:
    """Apply every revision from *url*'s to the head, one transaction each, with the tracer.

    *script_location* names another migrations directory (a test's, or a branch's). With *analyze*,
    a copy pg_restore just filled is analysed first, when anything is pending: a never-analysed table
    would count as empty to the verdict, and the revisions' own queries would be planned blind.
    """
    log = log or _log
    config = alembic_config()
    if script_location is not None:
        config.set_main_option("script_location", str(script_location))
    script = ScriptDirectory.from_config(config)
    with (
        holding_migration_lock(url, settings) as engine,
        open_connection(engine, autocommit=True) as observer,
    ):
        start = current_revision(observer)
        pending = [
            revision
            for revision in script.iterate_revisions("heads", start or "base")
            if revision.revision != start
        ]
        pending.reverse()
        if not pending:
            return TracedUpgrade(start, start, [], {})
        if analyze:
            observer.exec_driver_sql("ANALYZE")
        tables = [(str(q), str(n)) for q, n in observer.exec_driver_sql(_TABLES)]
        rows = {str(name): int(count) for name, count in observer.exec_driver_sql(_ROWS)}
        traced = []
        with _Probes(url, tables) as probes:
            for revision in pending:
                traced.append(_trace_one(engine, config, revision, observer, log))
        for trace, spans in traced:
            _attribute(trace, spans, probes.blocked)
        end = current_revision(observer)
    return TracedUpgrade(start, end, [trace for trace, _ in traced], rows)


def _trace_one(
    engine: Engine, config: Config, revision: Script, observer: Connection, log: Logger
) -> tuple[RevisionTrace, list[tuple[float, float]]]:
    """Apply *revision* in a transaction of its own, traced; its trace, and each statement's span of
    time (from its start to the next one's, the last one's to the commit) for the probes."""
    sizes = {
        int(oid): int(size)
        for oid, size in observer.exec_driver_sql(
            "SELECT c.oid::bigint, pg_relation_size(c.oid) FROM pg_class AS c "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm', 'i', 't') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        )
    }
    started = time.monotonic()
    with _ALEMBIC_COMMANDS, open_connection(engine) as connection:
        recorder = _Recorder(connection)
        recorder.remember_sizes(sizes)
        raw = connection.connection.dbapi_connection
        assert raw is not None
        with _Sampler(engine.url, raw.info.backend_pid) as recorder.sampler:
            event.listen(connection, "before_cursor_execute", recorder.before)
            event.listen(connection, "after_cursor_execute", recorder.after)
            config.attributes["connection"] = connection
            command.upgrade(config, revision.revision)
    committed = time.monotonic()
    names: dict[int, str] = dict(
        observer.exec_driver_sql(
            "SELECT c.oid::bigint, n.nspname || '.' || c.relname FROM pg_class AS c "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        ).all()
    )
    trace = RevisionTrace(
        revision=revision.revision, seconds=round(committed - started, 3), allowed=_allowances(revision.path)
    )
    spans = []
    for index, statement in enumerate(recorder.statements):
        until = committed if statement.in_transaction else statement.ended
        trace.statements.append(
            StatementTrace(
                sql=statement.sql,
                seconds=round(statement.ended - statement.started, 3),
                rows=statement.rows,
                wal_bytes=statement.wal_bytes,
                # Relations gone by the commit (a rewrite's transient heap) are not the revision's.
                rewrites=sorted(names[oid] for oid in statement.rewrites if oid in names),
                locks=[
                    LockHeld(relation=names[oid], mode=mode, held_seconds=round(until - statement.started, 3))
                    for oid, mode in sorted(statement.locks.items())
                    if oid in names
                ],
                sizes={names[oid]: size for oid, size in statement.sizes.items() if oid in names},
            )
        )
        next_start = (
            recorder.statements[index + 1].started if index + 1 < len(recorder.statements) else committed
        )
        spans.append((statement.started, next_start))
    log.info(
        "traced revision %s: %d statement(s) in %.2f s",
        revision.revision,
        len(trace.statements),
        trace.seconds,
    )
    return trace, spans


def _attribute(
    trace: RevisionTrace, spans: list[tuple[float, float]], blocked: dict[str, list[tuple[float, float]]]
) -> None:
    for statement, (start, end) in zip(trace.statements, spans, strict=True):
        for table, intervals in blocked.items():
            overlaps = [min(e, end) - max(s, start) for s, e in intervals if min(e, end) > max(s, start)]
            if overlaps:
                statement.probe_blocked_seconds[table] = Blocked(
                    max=round(max(overlaps), 3), total=round(sum(overlaps), 3)
                )


def _allowances(path: str) -> dict[str, str]:
    """The revision's ``DBOPS_PLAN_ALLOW`` declaration: what it accepts, and why."""
    spec = importlib.util.spec_from_file_location(f"_plan_{Path(path).stem}", path)
    if spec is None or spec.loader is None:
        return {}
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    declared = getattr(module, ALLOWANCE, {})
    return {str(key): str(value) for key, value in dict(declared).items()}
