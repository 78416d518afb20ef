"""``restore-tables``: bring chosen tables' rows back from a backup, from a form in the Prefect UI.

The rows go into a new schema of the live database first, for inspection. With ``merge`` the rows
the live tables lack are then inserted (parents first, in one transaction), after an operator has
approved the summary on the run's page unless ``approval`` is off: what the schema holds, and per
table how many rows a merge would insert, finds already there, and would replace. A rejection or no
answer merges nothing and keeps the schema, so the restored rows can still be looked at.

The maintenance slot is held while the backup is read and while the merge runs, and released while
the run waits for a person, so a restore waiting for approval never holds up the nightly backup.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State

from flows.approval import ask_operator, unapproved
from flows.events import tables_awaiting_approval, tables_merged, tables_rejected
from flows.maintenance_slot import maintenance_slot
from models.settings import load_settings
from models.table_restore import TableRestoreRequest, TableRestoreResult
from tasks.restore.summary import age
from tasks.restore.tables.restore import merge_into_live, restore_into_schema
from tasks.storage import open_store

restore_into_schema_task = task(name="restore-tables-into-schema", cache_policy=NO_CACHE)(restore_into_schema)
merge_task = task(name="merge-into-live-tables", cache_policy=NO_CACHE)(merge_into_live)


@flow(name="restore-tables")
def restore_tables_flow(
    tables: list[str],
    into_schema: str,
    backup_id: str = "latest",
    where: str = "",
    merge: bool = False,
    replace: bool = False,
    approval: bool = True,
    from_database: str = "",
) -> TableRestoreResult | State:
    """Restore chosen tables' rows from a backup into a new schema; with merge, insert the missing ones.

    Args:
        tables: The tables to restore, e.g. applications and courses; parents are merged first.
        into_schema: A new schema of the live database for the restored rows, e.g. restore_applications.
        backup_id: The backup to read (see dbops backups), or latest.
        where: Keep only rows matching this SQL condition, in each table that has its columns, e.g.
            university_id = '2f1c...'. Empty: every row.
        merge: Then insert the rows the live tables lack (matched by primary key), in one transaction.
        replace: With merge: also update the live rows whose content differs from the backup's.
        approval: With merge: pause for an operator to approve the summary before the live tables are
            touched.
        from_database: Read a backup of this database instead of the live database's own; empty means
            the live database's name.
    """
    settings = load_settings()
    logger = get_run_logger()
    request = TableRestoreRequest(
        backup_id=backup_id,
        tables=tables,
        where=where or None,
        into_schema=into_schema,
        merge=merge,
        replace=replace,
        from_database=from_database or None,
    )
    with maintenance_slot(settings, "restore-tables"):
        result = restore_into_schema_task(settings, open_store(settings), request, logger=logger)
        if merge and not approval:  # no wait for a person: one hold of the slot, nothing in between
            result = merge_task(settings, result, replace=replace, logger=logger)
    if merge and not result.merged:
        tables_awaiting_approval(result.database, result.backup_id, result.schema_name)
        decision = ask_operator(
            approval_markdown(result, datetime.now(UTC)), settings.restore_approval_timeout_seconds
        )
        if not decision.approved:
            message = (
                f"Rows of {', '.join(table.table for table in result.tables)} from backup "
                f"{result.backup_id} not merged into {result.database}: {decision.answer}. The live tables "
                f"were not touched; the restored rows stay in schema {result.schema_name} for inspection."
            )
            logger.warning(message)
            tables_rejected(result.database, result.backup_id, result.schema_name, decision.answer)
            _publish(result)
            return unapproved(decision, message)
        logger.info("merge into %s %s", result.database, decision.answer)
        with maintenance_slot(settings, "restore-tables"):
            result = merge_task(settings, result, replace=replace, logger=logger)
    if result.merged:
        tables_merged(result.database, result.backup_id, result.merge_counts())
    _publish(result)
    return result


def _publish(result: TableRestoreResult) -> None:
    verb = "merged into" if result.merged else "restored beside"
    create_table_artifact(
        key="restore-tables",
        table=result.report_rows(),
        description=f"Backup {result.backup_id}: tables {verb} {result.database}; the restored rows are "
        f"in schema {result.schema_name}",
    )


def approval_markdown(result: TableRestoreResult, now: datetime) -> str:
    """What the operator approves: the backup, the schema, and per table what a merge would do."""
    taken = result.backup_finished_at
    replacing = (
        "yes: live rows whose content differs are updated from the backup"
        if result.replace
        else "no: live rows that are already there are left as they are"
    )
    lines = [
        f"## Merge restored rows into {result.database}?",
        "",
        "| | |",
        "|---|---|",
        f"| **Database** | {result.database} on {result.server} |",
        f"| **Backup** | {result.backup_id} |",
        f"| **Taken** | {taken.isoformat(timespec='seconds')} ({age(taken, now)} ago) |",
        f"| **Schema** | {result.schema_name} (kept either way) |",
        f"| **Filter** | {f'`{result.where}`' if result.where else 'none: every row'} |",
        f"| **Replace** | {replacing} |",
        "",
        "### Per table, parents first",
        "",
        "| Table | In schema | Filter | Would insert | Already present | Would replace |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for table in result.tables:
        differing = table.differing or 0
        replaced = f"{differing:,}" if result.replace else f"0 ({differing:,} differ)"
        lines.append(
            f"| {table.table} | {table.rows:,} | {result.filter_of(table)} | {table.missing or 0:,} | "
            f"{table.present or 0:,} | {replaced} |"
        )
    lines += [
        "",
        "Choose **approve** to merge, in one transaction, or **reject** to leave the live tables as they "
        f"are. Either way the restored rows stay in schema {result.schema_name}.",
    ]
    return "\n".join(lines)
