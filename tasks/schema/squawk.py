"""squawk, the migration linter, run on SQL: what ``make lint`` runs on every revision's offline SQL
(migrations/lint.py) and what ``dbops migrate --plan`` attaches to each statement it measured.

squawk comes with the dev dependencies (``squawk-cli``); where it is missing, the lint says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# The oldest PostgreSQL major dbops supports: rules that depend on the server judge against it.
PG_VERSION = "15.0"


class LintError(Exception):
    """squawk could not run, or a revision cannot be linted as written."""


@dataclass(frozen=True)
class Finding:
    """One squawk report on a revision's SQL (``line`` counts from 1)."""

    rule: str
    line: int
    statement: str
    message: str
    help: str


def squawk_binary() -> Path:
    """The squawk the ``squawk-cli`` dev dependency installed beside this interpreter, or one on PATH."""
    beside = Path(sys.executable).with_name("squawk")
    if beside.is_file():
        return beside
    found = shutil.which("squawk")
    if found is None:
        raise LintError(
            "squawk is not installed: it comes with the dev dependencies (make install, or "
            "pip install -c constraints.txt -e '.[dev]')"
        )
    return Path(found)


def squawk(sql: str, *, label: str, exclude: Iterable[str] = ()) -> list[Finding]:
    """Run squawk on *sql* (reported as *label*) and return what it found."""
    rules = sorted(exclude)
    arguments = [str(squawk_binary()), "--reporter", "json", "--pg-version", PG_VERSION]
    arguments += ["--stdin-filepath", label]
    if rules:
        arguments.append(f"--exclude={','.join(rules)}")
    completed = subprocess.run(arguments, input=sql, capture_output=True, text=True, check=False)
    # squawk exits 0 when the SQL is clean, 1 when it reports something, 2 on bad usage.
    if completed.returncode not in (0, 1):
        raise LintError(
            f"squawk exited {completed.returncode} on {label}: {completed.stderr.strip() or completed.stdout}"
        )
    lines = sql.splitlines()
    findings = []
    for item in json.loads(completed.stdout or "[]"):
        line = int(item["line"])  # squawk's JSON counts lines from 0
        findings.append(
            Finding(
                rule=str(item["rule_name"]),
                line=line + 1,
                statement=lines[line].strip() if line < len(lines) else "",
                message=str(item["message"]),
                help=str(item.get("help") or ""),
            )
        )
    return findings
