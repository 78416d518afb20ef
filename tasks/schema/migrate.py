"""Locked Alembic migrations: upgrade or downgrade one database, never two runs at once.

The lock, the DDL timeouts and the "did it really commit" check live here, so ``dbops migrate``,
``alembic upgrade head`` and the Prefect flow all get them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import to_tuple
from alembic.util.exc import CommandError as AlembicCommandError
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

from models.database_url import describe
from models.errors import DowngradeRefusedError, MigrationError, RevisionNotFoundError, TableLockTimeoutError
from models.results import MigrationDirection, MigrationResult
from models.settings import Environment, Settings
from tasks.postgres.engine import make_engine, open_connection
from tasks.postgres.locks import LOCK_NOT_AVAILABLE
from tasks.schema.applied import adopt_applied_revisions
from tasks.schema.lock import migration_lock
from tasks.schema.lock_waits import (
    backend_pid,
    backoff_seconds,
    describe_blockers,
    is_lock_timeout,
    watching_blockers,
)

# The ``migrations`` package sits beside ``tasks`` in the source tree and in site-packages alike.
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

# alembic.command works through module-level proxies (alembic.context, alembic.op) and is not
# thread-safe; Prefect may run tasks in threads, so every command in this process takes turns.
_ALEMBIC_COMMANDS = threading.Lock()

_log = logging.getLogger(__name__)


def alembic_config(connection: Connection | None = None, **attributes: Any) -> Config:
    """An Alembic config for our migrations that does not depend on the working directory."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    config.attributes.update(attributes)
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None, "the migration history has no revisions"
    return head


def resolve_target(script: ScriptDirectory, target: str) -> str | None:
    """The full revision id *target* names (None for ``base``); unknown names are bad input."""
    if target == "base":
        return None
    if target in ("head", "heads"):
        return script.get_current_head()
    try:
        revision = script.get_revision(target)
    except (AlembicCommandError, RevisionError):
        revision = None
    if revision is None:
        known = ", ".join(r.revision for r in script.walk_revisions())
        raise RevisionNotFoundError(
            f"no migration revision named {target!r}",
            detail=f"known revisions: {known}",
            hint="pass a revision id from 'alembic history', or head or base",
        )
    return revision.revision


def plan_direction(script: ScriptDirectory, current: str | None, target: str | None) -> MigrationDirection:
    """Whether going from *current* to *target* is an upgrade, a downgrade or nothing."""
    if current == target:
        return MigrationDirection.NONE
    if target is None:
        return MigrationDirection.DOWNGRADE
    if current is None:
        return MigrationDirection.UPGRADE
    try:
        ancestors = {revision.revision for revision in script.iterate_revisions(current, "base")}
    except (AlembicCommandError, RevisionError):
        raise MigrationError(
            f"the database is at revision {current}, which this code does not know",
            detail=f"this code's head is {script.get_current_head()}",
            hint="the database was migrated by a newer release: deploy that release, or downgrade with it",
        ) from None
    return MigrationDirection.DOWNGRADE if target in ancestors else MigrationDirection.UPGRADE


def current_revision(observer: Connection) -> str | None:
    """Read ``alembic_version`` through *observer*, an autocommit connection of its own.

    Reading through the migration connection would autobegin a transaction before Alembic
    configures its context, and Alembic would then never commit the DDL.
    """
    return MigrationContext.configure(observer).get_current_revision()


def ddl_timeouts(settings: Settings) -> dict[str, str]:
    """The session settings every migration runs under, so its DDL never queues forever.

    They apply to the whole session, not to a transaction, so they still hold inside Alembic's
    ``autocommit_block()``. The offline SQL (``alembic upgrade --sql``) starts with them too.
    """
    return {
        "lock_timeout": f"{int(settings.ddl_lock_timeout_seconds * 1000)}ms",
        "statement_timeout": f"{int(settings.ddl_statement_timeout_seconds * 1000)}ms",
    }


def migration_engine(url: URL, settings: Settings) -> Engine:
    """An engine whose sessions carry the DDL timeouts from their first statement on."""
    return make_engine(url, settings, purpose="migrate", server_settings=ddl_timeouts(settings))


@contextmanager
def holding_migration_lock(url: URL, settings: Settings) -> Iterator[Engine]:
    """Yield the migration engine while this process holds the migration lock of *url*'s database."""
    lock_engine = make_engine(url, settings, purpose="migration lock")
    with migration_lock(lock_engine, settings.migration_lock_timeout_seconds):
        yield migration_engine(url, settings)


@contextmanager
def locked_migration_connection(url: URL, settings: Settings) -> Iterator[Connection]:
    """A fresh, untouched migration connection, yielded while holding the migration lock."""
    with holding_migration_lock(url, settings) as engine, open_connection(engine) as connection:
        yield connection


def migrate(
    url: URL,
    settings: Settings,
    *,
    target: str = "head",
    allow_downgrade: bool = False,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> MigrationResult:
    """Bring the database at *url* to *target* (a revision id, ``head`` or ``base``) under the lock."""
    log = logger or _log
    started = time.monotonic()
    script = script_directory()
    target_revision = resolve_target(script, target)
    steps: list[str] = []

    def record_step(*, step: Any, **_: Any) -> None:
        doc = step.up_revision.doc if step.up_revision is not None else ""
        steps.append(f"{'upgrade' if step.is_upgrade else 'downgrade'} {step.up_revision_id}: {doc}")
        log.info("applied %s", steps[-1])

    with (
        holding_migration_lock(url, settings) as engine,
        open_connection(engine, autocommit=True) as observer,
    ):
        lock_wait = time.monotonic() - started
        before = current_revision(observer)
        direction = plan_direction(script, before, target_revision)
        if (
            direction is MigrationDirection.DOWNGRADE
            and settings.environment is Environment.PRODUCTION
            and not allow_downgrade
        ):
            raise DowngradeRefusedError(
                f"refusing to downgrade {describe(url)} from {before} to {target_revision or 'base'} "
                "in production",
                hint="downgrades can drop data; pass --allow-downgrade if this is intended",
            )
        log.info(
            "%s %s: %s -> %s", direction.value, describe(url), before or "base", target_revision or "base"
        )
        adopted = adopt_applied_revisions(observer, script, before)
        if adopted:
            log.info("recorded the checksums of %d revision(s) applied before they were kept", adopted)
        if direction is not MigrationDirection.NONE:

            def run_alembic(connection: Connection) -> None:
                config = alembic_config(connection, on_version_apply=record_step)
                if direction is MigrationDirection.UPGRADE:
                    command.upgrade(config, target_revision or "head")
                else:
                    command.downgrade(config, target_revision or "base")

            with _ALEMBIC_COMMANDS:
                apply_with_lock_retries(
                    run_alembic,
                    engine,
                    settings,
                    next_revision=lambda: next_revision(
                        script, current_revision(observer), target_revision, direction
                    ),
                    failed=lambda error: failed_statement(url, target, error),
                    log=log,
                )
        after = current_revision(observer)
    if after != target_revision:
        raise MigrationError(
            f"the migration of {describe(url)} did not take effect",
            detail=f"expected revision {target_revision}, found {after}",
            hint="check the server log for a rolled-back transaction and rerun dbops migrate",
        )
    return MigrationResult(
        database=describe(url),
        target=target,
        revision_before=before,
        revision_after=after,
        direction=direction,
        steps=steps,
        lock_wait_seconds=round(lock_wait, 3),
        elapsed_seconds=round(time.monotonic() - started, 3),
    )


def next_revision(
    script: ScriptDirectory, current: str | None, target: str | None, direction: MigrationDirection
) -> str:
    """The revision the next step applies (upgrade) or reverts (downgrade) on the way to *target*."""
    if direction is MigrationDirection.DOWNGRADE and current is not None:
        return current
    for revision in script.iterate_revisions(target or "heads", current or "base"):
        if current in (to_tuple(revision.down_revision, default=()) or (None,)):
            return revision.revision
    return target or "head"


def apply_with_lock_retries(
    run: Callable[[Connection], None],
    engine: Engine,
    settings: Settings,
    *,
    next_revision: Callable[[], str],
    failed: Callable[[DBAPIError], MigrationError],
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> None:
    """Run Alembic on a fresh connection; when a revision's DDL times out waiting for a table lock,
    run it again, alone, after a backoff, up to ``DBOPS_MIGRATION_LOCK_RETRIES`` times.

    Each revision commits on its own (``transaction_per_migration``), so a new run resumes at the
    revision that failed; the ones before it are never applied twice. The wait is bounded: at most
    ``(retries + 1) * lock_timeout`` plus the backoffs for each revision.
    """
    failures: dict[str, int] = {}
    while True:
        with (
            open_connection(engine) as connection,
            watching_blockers(engine, backend_pid(connection)) as watch,
        ):
            try:
                run(connection)
                return
            except DBAPIError as error:
                if not is_lock_timeout(error):
                    raise failed(error) from None
                blocked_by = describe_blockers(watch.seen)
                reason = str(error.orig).strip().splitlines()[0]
        revision = next_revision()
        failures[revision] = attempt = failures.get(revision, 0) + 1
        retries = settings.migration_lock_retries
        if attempt > retries:
            raise TableLockTimeoutError(
                f"revision {revision} could not take its table lock within "
                f"{settings.ddl_lock_timeout_seconds:g} s in {attempt} attempt(s); it was not applied",
                detail=f"{blocked_by} ({reason}, SQLSTATE {LOCK_NOT_AVAILABLE})",
                hint="let that session finish or end it with pg_terminate_backend(pid) and rerun dbops "
                "migrate, or raise DBOPS_DDL_LOCK_TIMEOUT_SECONDS or DBOPS_MIGRATION_LOCK_RETRIES",
            )
        pause = backoff_seconds(attempt)
        log.warning(
            "revision %s waited %g s for a table lock, %s; retry %d of %d in %.1f s",
            revision,
            settings.ddl_lock_timeout_seconds,
            blocked_by,
            attempt,
            retries,
            pause,
        )
        time.sleep(pause)


_HINTS_BY_SQLSTATE = {
    "57014": "a statement ran longer than DBOPS_DDL_STATEMENT_TIMEOUT_SECONDS; raise it for this migration",
}


def failed_statement(url: URL, target: str, error: DBAPIError) -> MigrationError:
    """A failed DDL statement as an operator-readable error; the transaction was rolled back."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    message = str(error.orig).strip().splitlines()[0] if error.orig is not None else type(error).__name__
    return MigrationError(
        f"the migration of {describe(url)} to {target} failed and was rolled back",
        detail=f"{message} (SQLSTATE {sqlstate})" if sqlstate else message,
        hint=_HINTS_BY_SQLSTATE.get(sqlstate or "", "fix the failing migration and rerun dbops migrate"),
    )
