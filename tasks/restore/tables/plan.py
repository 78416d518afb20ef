"""The decisions of a table restore that need no database: which requests are refused, in which
order tables merge, and what a ``--where`` error means.

Pure: every refusal here happens before anything is read or written, so a mistyped option costs
nothing and touches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from models.errors import RestoreRefusedError
from models.table_restore import TableRestoreRequest

#: Plain lower-case identifiers only: the schema is for people to query, who should not need quotes.
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_MAX_NAME_BYTES = 63
#: SQLSTATE of an undefined column: the table lacks a column the filter uses, so it stays unfiltered.
UNDEFINED_COLUMN = "42703"


def checked_request(request: TableRestoreRequest) -> TableRestoreRequest:
    """*request* with its tables de-duplicated and an empty filter as none, or refused."""
    tables = list(dict.fromkeys(name.strip() for name in request.tables if name.strip()))
    if not tables:
        raise RestoreRefusedError(
            "no table to restore; nothing was done",
            hint="name each table with --table, e.g. --table applications",
        )
    if request.replace and not request.merge:
        raise RestoreRefusedError(
            "--replace says how --merge treats rows that differ, and there is no --merge; nothing was done",
            hint="add --merge to merge into the live tables, or leave out --replace to only restore "
            "into the schema",
        )
    check_schema_name(request.into_schema)
    where = (request.where or "").strip() or None
    return request.model_copy(update={"tables": tables, "where": where})


def check_schema_name(name: str) -> None:
    problem = None
    if not _SCHEMA_NAME.match(name):
        problem = "is not a plain lower-case name (letters, digits and _, not starting with a digit)"
    elif len(name.encode()) > _MAX_NAME_BYTES:
        problem = f"is longer than PostgreSQL's {_MAX_NAME_BYTES} bytes"
    elif name.startswith("pg_") or name in {"public", "information_schema"}:
        problem = "is reserved"
    if problem:
        raise RestoreRefusedError(
            f"--into-schema {name!r} {problem}; nothing was done",
            hint="name a new schema for the restored rows, e.g. --into-schema restore_applications",
        )


def check_in_backup(tables: Sequence[str], backup_tables: Iterable[str], backup_id: str) -> None:
    held = sorted(backup_tables)
    _refuse_absent(
        tables,
        held,
        f"in backup {backup_id}",
        detail=f"it holds {', '.join(held)}",
        hint="check the name of each --table",
    )


def check_live(tables: Sequence[str], live_tables: Iterable[str], database: str) -> None:
    _refuse_absent(
        tables,
        live_tables,
        f"a table of the live database {database}",
        hint="rows are restored beside the live table of the same name; migrate the database first "
        "(dbops migrate) if the table is new",
    )


def _refuse_absent(
    tables: Sequence[str], available: Iterable[str], place: str, *, hint: str, detail: str | None = None
) -> None:
    present = set(available)
    missing = [table for table in tables if table not in present]
    if missing:
        raise RestoreRefusedError(
            f"{_listed(missing)} {'is' if len(missing) == 1 else 'are'} not {place}; nothing was done",
            detail=detail,
            hint=hint,
        )


def check_mergeable(keys: Mapping[str, Sequence[str]]) -> None:
    """A merge matches rows by primary key; a table without one cannot be merged."""
    keyless = [table for table, key in keys.items() if not key]
    if keyless:
        raise RestoreRefusedError(
            f"{_listed(keyless)} {'has' if len(keyless) == 1 else 'have'} no primary key, which --merge "
            "matches rows by; nothing was done",
            hint="restore without --merge and copy the rows you need from the schema by hand",
        )


def check_where_applies(
    where: str, unfiltered: Mapping[str, str], tables: Sequence[str], *, replace: bool = False
) -> None:
    """A filter that applies to none of the tables is a mistake (a misspelt column), not a wish to
    restore everything: refused. With ``replace``, so is one that misses any table: that table would
    be restored whole, and every row of it changed since the backup (of every university, say, when
    the filter named one) put back."""
    reasons = "; ".join(f"{table}: {reason}" for table, reason in unfiltered.items())
    if tables and all(table in unfiltered for table in tables):
        raise RestoreRefusedError(
            f"--where applies to none of the tables: {reasons}; nothing was done",
            hint="use columns of at least one of the tables (\\d TABLE in psql lists them)",
        )
    if replace and unfiltered:
        raise RestoreRefusedError(
            f"--where does not apply to {_listed(list(unfiltered))} ({reasons}), so --replace would put "
            "back every row of it that changed since the backup; nothing was done",
            hint="restore those tables in a run of their own, or merge without --replace",
        )


def refuse_where(server_message: str) -> RestoreRefusedError:
    """The refusal of a filter PostgreSQL would not accept (a syntax error, a second statement, an
    unknown function or table, a value of the wrong type), in PostgreSQL's own words."""
    first_line = server_message.strip().splitlines()[0] if server_message.strip() else "rejected"
    return RestoreRefusedError(
        f"--where is not a filter PostgreSQL accepts: {first_line}; nothing was done",
        hint="pass one boolean SQL expression over the tables' columns, "
        "e.g. --where \"university_id = '2f1c...'\"",
    )


def merge_order(tables: Sequence[str], references: Iterable[tuple[str, str]]) -> list[str]:
    """*tables*, each after the tables it references: the order inserts must run in.

    *references* are (referencing, referenced) pairs from the foreign keys; only pairs within
    *tables* order anything, and a table referencing itself is its own business (a single INSERT
    checks its foreign keys at the statement's end). Otherwise the given order is kept, so the plan is
    deterministic. Tables caught in a cycle keep their given order, after everything else: the
    merge's foreign-key checks then decide, and roll it back if the order cannot work.
    """
    chosen = list(dict.fromkeys(tables))
    parents: dict[str, set[str]] = {table: set() for table in chosen}
    for child, parent in references:
        if child in parents and parent in parents and child != parent:
            parents[child].add(parent)
    ordered: list[str] = []
    placed: set[str] = set()
    while len(ordered) < len(chosen):
        ready = [table for table in chosen if table not in placed and parents[table] <= placed]
        if not ready:
            ordered += [table for table in chosen if table not in placed]
            break
        ordered.append(ready[0])
        placed.add(ready[0])
    return ordered


def _listed(tables: Sequence[str]) -> str:
    return ("table " if len(tables) == 1 else "tables ") + ", ".join(tables)
