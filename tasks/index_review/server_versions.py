"""What the review can read differs by PostgreSQL major: the catalogue columns it picks for each, what
an older server cannot tell it, and what to do when a read fails.

dbops supports PostgreSQL 15 to 18. PostgreSQL 16 added the time of each relation's last scan
(``pg_stat_all_indexes.last_idx_scan``, ``pg_stat_all_tables.last_seq_scan``). Naming those columns on
15 fails the whole review, so the catalogue queries read NULL in their place there and the report
says what it therefore could not judge: a warning, never an error.

Choices are made by ``server_version_num`` as the server reports it (``SHOW``), not as the session's
start announces it: the catalogue is the server's, whatever a proxy in between claims.
"""

from __future__ import annotations

OLDEST_SUPPORTED_MAJOR = 15
NEWEST_SUPPORTED_MAJOR = 18
LAST_SCAN_TIMES = 160000  # last_idx_scan and last_seq_scan

# SQLSTATE classes that say the statement does not fit the server, as opposed to the role lacking a
# privilege or the session failing: syntax error or access rule violation, feature not supported.
_MISFIT_CLASSES = ("42", "0A")
_INSUFFICIENT_PRIVILEGE = "42501"

UNKNOWN_USAGE_AGE = (
    "index usage age is unknown before PostgreSQL 16: PostgreSQL {major} does not record when an index "
    "or table was last scanned (last_idx_scan, last_seq_scan), so redundant and seq-scans findings rest "
    "on scan counts alone, without how recently those scans happened"
)


def major(server_version_num: int) -> int:
    """15 for ``150014``: the major version of a ``server_version_num``."""
    return server_version_num // 10000


def has_last_scan_times(server_version_num: int) -> bool:
    return server_version_num >= LAST_SCAN_TIMES


def last_index_scan_column(server_version_num: int) -> str:
    """The select-list expression for an index's last scan, given ``pg_stat_all_indexes AS s``."""
    return "s.last_idx_scan" if has_last_scan_times(server_version_num) else "NULL::timestamptz"


def last_sequential_scan_column(server_version_num: int) -> str:
    """The select-list expression for a table's last sequential scan, given ``pg_stat_all_tables AS s``."""
    return "s.last_seq_scan" if has_last_scan_times(server_version_num) else "NULL::timestamptz"


def unjudged(server_version_num: int) -> list[str]:
    """The report's warnings: what this server's catalogue cannot tell the review."""
    if has_last_scan_times(server_version_num):
        return []
    return [UNKNOWN_USAGE_AGE.format(major=major(server_version_num))]


def statistics_error_hint(sqlstate: str | None, server_version_num: int | None) -> str:
    """What to do when reading the statistics failed with *sqlstate*.

    Only a missing privilege calls for ``pg_monitor``. A statement that does not fit the server (an
    unknown column, say) is dbops' fault on a supported major, and the server's age on an older one;
    granting a role anything changes neither.
    """
    supported = f"dbops supports PostgreSQL {OLDEST_SUPPORTED_MAJOR} to {NEWEST_SUPPORTED_MAJOR}"
    if sqlstate == _INSUFFICIENT_PRIVILEGE:
        return (
            "the review's role needs to read the pg_stat_* views and the catalogue: "
            "GRANT pg_monitor TO that role"
        )
    if server_version_num is not None and major(server_version_num) < OLDEST_SUPPORTED_MAJOR:
        return f"{supported}, and this server is PostgreSQL {major(server_version_num)}: upgrade it"
    if sqlstate is not None and sqlstate.startswith(_MISFIT_CLASSES):
        server = "this server" if server_version_num is None else f"PostgreSQL {major(server_version_num)}"
        return (
            f"the review's catalogue query does not fit {server} ({supported}); "
            "report it to the dbops maintainers with this message"
        )
    return "retry the review; if it fails again, the server's log says why"
