"""Which invalid indexes an unfinished dbops build left behind: recognised by name, never by age.

A concurrent build commits its catalogue entry before it waits and builds, so one that fails, times
out, is interrupted or loses its client leaves an INVALID index that the planner ignores and every
write still maintains. Such a leftover is recognisable by its name:

- a companion of ``REINDEX ... CONCURRENTLY`` (``<name>_ccnew``, ``_ccnew1``, ..., ``_ccold``, ...):
  PostgreSQL's own advice for either is to drop it;
- the name of an index a dbops build makes: the one a ``fk-without-index`` finding asks for, or one
  the models declare (``missing-index`` and the ``invalid`` rebuild build those, and so do migrations).

A name is not enough: the index may still be in the hands of a live run. A build in progress shows in
``pg_stat_progress_create_index``; between its steps, the run is alive while it holds the migration
lock, which every dbops build holds on the very session that builds (so the lock goes only when that
backend has ended). Only an invalid index that no build is working on, while no other session holds
the lock, is a leftover of a dead run, and then it is one however young.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from models.index_review import Finding, FindingKind

#: The names REINDEX CONCURRENTLY gives the index it builds and the one it retires.
REINDEX_COMPANION = re.compile(r"^(?P<base>.+)_cc(?:new|old)[0-9]*$")
#: PostgreSQL cuts a name to 63 bytes, possibly short of a multibyte character.
_MAX_IDENTIFIER_BYTES = 63
_LONGEST_CHARACTER_BYTES = 4


def builds_by_name(findings: Iterable[Finding], declared: Iterable[str]) -> dict[str, str]:
    """The index names a dbops build makes, each with what builds it (for the report to say)."""
    builds = {name: "the index the models declare" for name in declared}
    for finding in findings:
        if finding.kind is FindingKind.FOREIGN_KEY_WITHOUT_INDEX and finding.index:
            builds[finding.index] = f"the index {finding.id} asks for"
    return builds


def leftover_origin(name: str, builds: Mapping[str, str]) -> str | None:
    """What left the invalid index *name*, when it was a dbops build; None for any other index."""
    if name in builds:
        return f"an unfinished build of {builds[name]}"
    match = REINDEX_COMPANION.match(name)
    if match:
        return f"an unfinished REINDEX INDEX CONCURRENTLY of {match['base']}"
    return None


def left_by_build_of(name: str, index: str) -> bool:
    """*name* is what a build of *index* can leave: the index itself, or a REINDEX companion of it.

    The companion's name is *index* with a suffix, cut short where the whole would pass 63 bytes, so
    a long *index* is matched by the prefix the companion kept.
    """
    if name == index:
        return True
    match = REINDEX_COMPANION.match(name)
    if match is None:
        return False
    base = match["base"]
    cut_short = len(name.encode()) > _MAX_IDENTIFIER_BYTES - _LONGEST_CHARACTER_BYTES
    return base == index or (cut_short and index.startswith(base))
