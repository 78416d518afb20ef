"""Locked Alembic migrations: upgrade or downgrade one database, never two runs at once.

The lock, the DDL timeouts and the "did it really commit" check live here, so ``dbops migrate``,
``alembic upgrade head`` and the Prefect flow all get them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError as AlembicCommandError
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

from models.database_url import describe
from models.errors import DowngradeRefusedError, MigrationError, RevisionNotFoundError
from models.results import MigrationDirection, MigrationResult
from models.settings import Environment, Settings
from tasks.postgres.engine import make_engine, open_connection
from tasks.schema.lock import migration_lock

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
        if direction is not MigrationDirection.NONE:
            try:
                with _ALEMBIC_COMMANDS, open_connection(engine) as connection:
                    config = alembic_config(connection, on_version_apply=record_step)
                    if direction is MigrationDirection.UPGRADE:
                        command.upgrade(config, target_revision or "head")
                    else:
                        command.downgrade(config, target_revision or "base")
            except DBAPIError as error:
                raise failed_statement(url, target, error) from None
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


_HINTS_BY_SQLSTATE = {
    "55P03": "another session holds a lock on a table this migration changes; retry when traffic is "
    "lower, or raise DBOPS_DDL_LOCK_TIMEOUT_SECONDS",
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
