"""Lint the SQL each migration revision runs with squawk, so that lock-heavy DDL fails ``make lint``.

A revision's SQL is what ``alembic upgrade <down>:<rev> --sql`` prints: the same statements, the same
transaction boundaries (an ``autocommit_block()`` shows as a COMMIT before it and a BEGIN after) and
the same session timeouts as ``dbops migrate`` runs. That is what squawk needs to see: adding a
constraint NOT VALID and validating it in one transaction looks harmless statement by statement and
is only wrong because of where the COMMIT is (``constraint-missing-not-valid``).

A revision may allow a rule only by naming it, with the reason it is safe there, in a module-level
``SQUAWK_ALLOW = {"rule-name": "why"}``. The rules are passed to squawk's ``--exclude``, which rejects
a name it does not know, and a rule allowed but no longer raised is reported too, so an allowance
never outlives its reason.

Run it as ``python -m migrations.lint``: exit 0 when every revision is clean, 1 with one block per
finding, 2 when squawk cannot run.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory

from models.errors import DbopsError
from tasks.schema.migrate import alembic_config
from tasks.schema.squawk import Finding, LintError, squawk

ALLOW_NAME = "SQUAWK_ALLOW"


@dataclass(frozen=True)
class RevisionReport:
    """What the lint found in one revision: squawk findings and allowances without a rule to allow."""

    revision: str
    path: Path
    sql_range: str
    findings: list[Finding]
    unused_allowances: list[str]

    @property
    def clean(self) -> bool:
        return not self.findings and not self.unused_allowances

    def describe(self) -> str:
        where = f"{self.path.name} (revision {self.revision})"
        blocks = [
            f"{where}: squawk {finding.rule}, line {finding.line} of `alembic upgrade "
            f"{self.sql_range} --sql`: {finding.message}\n    {finding.statement}\n    help: {finding.help}"
            for finding in self.findings
        ]
        blocks += [
            f"{where}: {ALLOW_NAME} allows {rule}, which its SQL no longer raises: remove the allowance"
            for rule in self.unused_allowances
        ]
        if self.findings:
            blocks.append(
                f"{where}: fix the migration, or allow the rule in the revision file with the reason it "
                f'is safe there: {ALLOW_NAME} = {{"rule-name": "why"}}'
            )
        return "\n".join(blocks)


def lint_sql(
    sql: str, *, label: str, allowed: Mapping[str, str] | None = None
) -> tuple[list[Finding], list[str]]:
    """squawk's findings on *sql* outside the *allowed* rules, and the allowed rules it never raised."""
    allowed = allowed or {}
    findings = squawk(sql, label=label, exclude=allowed)
    raised = {finding.rule for finding in squawk(sql, label=label)} if allowed else set()
    return findings, sorted(set(allowed) - raised)


def allowed_rules(revision: Script) -> dict[str, str]:
    """The revision's ``SQUAWK_ALLOW``: rule names mapped to a non-empty reason each."""
    declared = getattr(revision.module, ALLOW_NAME, {})
    if not isinstance(declared, dict) or not all(
        isinstance(rule, str) and isinstance(reason, str) and reason.strip()
        for rule, reason in declared.items()
    ):
        raise LintError(
            f"{revision.path}: {ALLOW_NAME} must map each squawk rule name to the reason it is safe "
            f'in this revision, e.g. {{"prefer-text-field": "why"}}'
        )
    return dict(declared)


def sql_range(revision: Script) -> str:
    """The ``<down>:<rev>`` range whose offline SQL is exactly this revision's upgrade."""
    down = revision.down_revision
    if isinstance(down, Sequence) and not isinstance(down, str):
        raise LintError(
            f"{revision.path}: revision {revision.revision} merges {', '.join(down)}; the lint renders "
            "each revision from its one parent, so give the history a straight line instead (point one "
            "branch's down_revision at the other's head)"
        )
    return f"{down or 'base'}:{revision.revision}"


def render_upgrade_sql(config: Config, revision: Script) -> str:
    """``alembic upgrade <down>:<rev> --sql`` for *revision*, through migrations/env.py's offline mode."""
    buffer = io.StringIO()
    config.output_buffer = buffer
    try:
        command.upgrade(config, sql_range(revision), sql=True)
    finally:
        config.output_buffer = None
    return buffer.getvalue()


def lint_revisions(config: Config) -> list[RevisionReport]:
    """Lint every revision under *config*'s script location, oldest first."""
    script = ScriptDirectory.from_config(config)
    reports = []
    for revision in reversed(list(script.walk_revisions())):
        path = Path(revision.path)
        allowed = allowed_rules(revision)
        findings, unused = lint_sql(
            render_upgrade_sql(config, revision), label=f"{path.stem}.sql", allowed=allowed
        )
        reports.append(RevisionReport(revision.revision, path, sql_range(revision), findings, unused))
    return reports


def main() -> int:
    try:
        reports = lint_revisions(alembic_config())
    except (LintError, DbopsError) as error:  # DbopsError: the settings env.py renders the SQL with
        print(f"migrations.lint: error: {error}", file=sys.stderr)
        return 2
    failed = [report for report in reports if not report.clean]
    for report in failed:
        print(report.describe(), file=sys.stderr)
    if failed:
        return 1
    print(f"squawk: {len(reports)} revisions clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
