"""Checksums of applied revisions, as Flyway's ``validate`` keeps them.

Alembic remembers only the head a database is at, not what the revisions that brought it there
said. A revision edited after it ran (or deleted) leaves databases that ran the old text and
databases that will run the new one, silently different. ``dbops_applied_revisions`` records the
sha256 of each revision file's bytes as it is applied, in the revision's own transaction, and
``dbops check`` compares it with the files this code ships.

The table belongs to the migration machinery, not to a revision: it must exist before the first
revision runs, and it is left out of drift detection like ``alembic_version``
(:data:`models.schema.MIGRATION_BOOKKEEPING_TABLES`). Revisions applied before it existed are adopted
with their current hash by the next ``dbops migrate``; their ``applied_at`` stays unknown (null).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError as AlembicCommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection

from models.schema import APPLIED_REVISIONS_TABLE

_CREATE = text(f"""
    CREATE TABLE IF NOT EXISTS {APPLIED_REVISIONS_TABLE} (
        revision text PRIMARY KEY,
        file_name text NOT NULL,
        sha256 text NOT NULL,
        applied_at timestamptz,
        recorded_at timestamptz NOT NULL DEFAULT now()
    )
""")
_EXISTS = text("SELECT to_regclass(:table) IS NOT NULL")
_RECORD = text(f"""
    INSERT INTO {APPLIED_REVISIONS_TABLE} (revision, file_name, sha256, applied_at)
    VALUES (:revision, :file_name, :sha256, now())
    ON CONFLICT (revision) DO UPDATE
    SET file_name = excluded.file_name, sha256 = excluded.sha256, applied_at = excluded.applied_at,
        recorded_at = excluded.recorded_at
""")
_ADOPT = text(f"""
    INSERT INTO {APPLIED_REVISIONS_TABLE} (revision, file_name, sha256, applied_at)
    VALUES (:revision, :file_name, :sha256, NULL)
    ON CONFLICT (revision) DO NOTHING
""")
_FORGET = text(f"DELETE FROM {APPLIED_REVISIONS_TABLE} WHERE revision = :revision")
_RECORDED = text(f"SELECT revision, file_name, sha256 FROM {APPLIED_REVISIONS_TABLE} ORDER BY revision")


def file_sha256(script: Script) -> str:
    """The sha256 of the revision file's bytes: any edit, even to a comment, changes it."""
    return hashlib.sha256(Path(script.path).read_bytes()).hexdigest()


def _row(script: Script) -> dict[str, str]:
    return {"revision": script.revision, "file_name": Path(script.path).name, "sha256": file_sha256(script)}


def record_applied_revision(*, ctx: Any, step: Any, **_: Any) -> None:
    """Alembic's ``on_version_apply`` callback: it runs inside the revision's own transaction, so the
    record commits (or rolls back) with the revision. A downgrade forgets the revision, so that
    applying it again records the text that ran then."""
    connection: Connection = ctx.connection
    connection.execute(_CREATE)
    if step.is_upgrade:
        connection.execute(_RECORD, _row(step.up_revision))
    else:
        connection.execute(_FORGET, {"revision": step.up_revision_id})


def adopt_applied_revisions(connection: Connection, script: ScriptDirectory, current: str | None) -> int:
    """Record, with their current hash, the revisions up to *current* that have no record yet (applied
    before the table existed, or by a release without it); returns how many were adopted."""
    connection.execute(_CREATE)
    if current is None:
        return 0
    adopted = 0
    for revision in script.iterate_revisions(current, "base"):
        adopted += connection.execute(_ADOPT, _row(revision)).rowcount
    return adopted


def applied_revision_differences(connection: Connection, script: ScriptDirectory) -> list[str]:
    """One line for each recorded revision whose file was edited since, or that this code lacks.

    A database without the table (migrated by a release before it) has nothing to compare yet: that
    is not drift, and the next ``dbops migrate`` adopts its revisions.
    """
    if not connection.execute(_EXISTS, {"table": APPLIED_REVISIONS_TABLE}).scalar():
        return []
    differences = []
    for revision, file_name, sha256 in connection.execute(_RECORDED):
        try:
            script_revision = script.get_revision(revision)
        except (AlembicCommandError, RevisionError):
            script_revision = None
        if script_revision is None:
            differences.append(
                f"revision {revision} ({file_name}) was applied but is missing from the code: "
                "restore the file, or deploy the release that has it"
            )
        elif (current := file_sha256(script_revision)) != sha256:
            differences.append(
                f"revision {revision} ({Path(script_revision.path).name}) was edited after it was applied: "
                f"sha256 {current[:12]} now, {sha256[:12]} when applied; restore the applied text and put "
                "the change in a new revision"
            )
    return differences
