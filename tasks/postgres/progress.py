"""Which index builds this session can see running: the one SQL test both index checks share.

``pg_stat_progress_create_index`` lists the builds of every database on the server, and shows the
relation columns of another role's build only to members of ``pg_read_all_stats`` (NULL otherwise).
An anti-join written as ``NOT IN (SELECT index_relid ...)`` is therefore never true while any hidden
build runs anywhere, and every invalid index would pass. The test below is an ``EXISTS`` restricted
to this database: an index counts as being built only when this session sees its own build, so an
invalid index still fails wherever the build cannot be seen.
"""

from __future__ import annotations

_THIS_DATABASE = "(SELECT oid FROM pg_database WHERE datname = current_database())"


def index_build_seen(index_oid: str) -> str:
    """A boolean SQL expression: a build of the index *index_oid* (an SQL expression) is visibly
    running in this database right now."""
    return (
        "EXISTS (SELECT 1 FROM pg_stat_progress_create_index AS build "
        f"WHERE build.datid = {_THIS_DATABASE} AND build.index_relid = {index_oid})"
    )


#: Builds running in this database whose index this role may not see (another role's, without
#: ``pg_read_all_stats``): reported beside an invalid index, never taken to be it.
HIDDEN_BUILDS = (
    "SELECT count(*) FROM pg_stat_progress_create_index AS build "
    f"WHERE build.datid = {_THIS_DATABASE} AND build.index_relid IS NULL"
)
