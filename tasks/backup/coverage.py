"""The proof that a multi-part backup holds what a single pg_dump of its snapshot would, measured
against pg_dump itself rather than against dbops' own plan.

A pg_dump of the whole database in the backup's snapshot writes its table of contents before any
table's rows (the custom format puts it first), so ``pg_restore --list`` reads pg_dump's own
selection from the start of that stream, after which the pg_dump is stopped: the cost is one more
read of the catalogue, not one more copy of the data. Every entry of that list (table data, sequence
values, large objects, the rows of extensions' configuration tables, and every schema entry) must be
in exactly one part, and no part may hold an entry the list lacks.
"""

from __future__ import annotations

from models.backup_plan import coverage_problems, toc_entries
from models.database_url import describe
from models.errors import BackupError, CommandError
from tasks.backup.pg_dump import DumpJob, start_pg_dump
from tasks.backup.streams import CHUNK
from tasks.backup.toc import DumpCheck
from tasks.postgres.libpq import child_environment


def pg_dump_selection(job: DumpJob) -> list[str]:
    """The table of contents a single pg_dump of the backup's snapshot writes (:func:`toc_entries`)."""
    with (
        child_environment(job.url) as environment,
        start_pg_dump(job, [], environment) as dump,
        DumpCheck(job.pg_restore, job.log, job.settings.command_timeout_seconds) as listing,
    ):
        while listing.reading:
            chunk = dump.stdout.read(CHUNK)
            if not chunk:  # the whole dump was shorter than what pg_restore reads: it must have ended well
                try:
                    dump.finish()
                except CommandError as error:
                    raise BackupError(
                        f"pg_dump of {describe(job.url)} (the table of contents to check the parts "
                        "against) failed; nothing was kept",
                        detail=error.detail,
                        hint="see the pg_dump messages above; the next run retries from scratch",
                    ) from None
                break
            listing.feed(chunk)
        listing.verify()
        # Leaving the block stops the pg_dump, which has started on the rows nobody reads.
    return toc_entries(listing.listing)


def prove_coverage(selected: list[str], listings: dict[str, str]) -> None:
    """Fail unless the parts' tables of contents (*listings*, by part name) hold every entry of
    *selected* exactly once, and nothing else."""
    problems = coverage_problems(selected, {name: toc_entries(listing) for name, listing in listings.items()})
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise BackupError(
            "the backup's parts do not hold exactly what a single pg_dump of the snapshot would; "
            "nothing was kept",
            detail=shown,
            hint="report this with the entries named; meanwhile DBOPS_BACKUP_PARALLELISM=1 writes a "
            "single-object backup",
        )
