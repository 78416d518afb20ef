"""How one validation spreads its work over its connections: pure logic, tested without a server.

The slow part of every check is a handful of reads, each of one table or index: an orphan count per
foreign key, a ``bt_index_check`` per index, a count per table. They run ahead of the checks on a
pool of connections, largest first, as ``pg_amcheck -j`` orders its relations: the longest jobs start
early, and the short ones fill the gaps at the end, so no connection idles while another still has
a long queue. The checks then assemble their outcomes from those memoised reads, and the report
lists them in catalogue order, whichever finished first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

#: Hosts that are this machine, so its core count is the server's.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Connections for a server elsewhere, whose cores PostgreSQL does not report: no view or function
#: gives them, and max_worker_processes or max_parallel_workers default to 8 whatever the machine.
REMOTE_DEFAULT_PARALLELISM = 2


@dataclass(frozen=True)
class Read:
    """A read one check needs, run ahead on the pool; *run* memoises its result (or its error)."""

    check: str
    #: Bytes it reads, as far as the catalogue knows: only the order of the reads depends on it.
    cost: int
    run: Callable[[], object]


def largest_first(reads: Sequence[Read]) -> list[Read]:
    """*reads* in the order the pool takes them: largest first; equal ones keep their given order."""
    return sorted(reads, key=lambda read: -read.cost)


def is_local(host: str | None) -> bool:
    """Whether libpq's *host* is this machine: no host (the default socket), a socket directory, or
    a loopback name."""
    return not host or host.startswith(("/", "@")) or host in LOCAL_HOSTS


def parallelism(configured: int | None, host: str | None, local_cores: int | None) -> int:
    """Connections the validation uses: DBOPS_VALIDATE_PARALLELISM when set; otherwise the server's
    cores where they are known, which is only when the server shares this machine."""
    if configured is not None:
        return configured
    if is_local(host) and local_cores:
        return local_cores
    return REMOTE_DEFAULT_PARALLELISM


def in_catalogue_order(results: Mapping[str, T], names: Sequence[str]) -> list[T]:
    """The results of the checks *names*, in that order, however they completed."""
    return [results[name] for name in names]
