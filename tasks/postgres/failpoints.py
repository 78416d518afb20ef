"""Failpoints: kill this process at a named step, to prove what the next run finds there.

``DBOPS_FAILPOINT=<step>`` makes :func:`failpoint` send SIGKILL to its own process when the code
reaches that step, as an OOM kill or a pod eviction would: no ``finally`` block, no rollback, no
cleanup runs. Tests set it for one child process at a time; without it, a failpoint costs one
environment lookup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "DBOPS_FAILPOINT"


def failpoint(step: str) -> None:
    """Die here, at once, if ``DBOPS_FAILPOINT`` names *step*."""
    if os.environ.get(VARIABLE) == step:
        os.kill(os.getpid(), signal.SIGKILL)
