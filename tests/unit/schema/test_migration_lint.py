"""The squawk lint of every revision's offline SQL (migrations/lint.py), with the real squawk binary."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic.config import Config

from migrations.lint import lint_revisions, lint_sql
from tasks.schema.migrate import MIGRATIONS_DIR, alembic_config
from tasks.schema.squawk import LintError

VALIDATED_IN_ONE_TRANSACTION = """
SET lock_timeout = '10s';
SET statement_timeout = '10min';
BEGIN;
ALTER TABLE courses ADD CONSTRAINT ck_courses_code_caps CHECK (code = upper(code)) NOT VALID;
ALTER TABLE courses VALIDATE CONSTRAINT ck_courses_code_caps;
COMMIT;
"""

# A revision after head that makes the mistake 0002 used to make.
REVISION_0003 = '''"""courses: upper-case codes

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:00:00
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
{allow}

def upgrade() -> None:
    op.execute("ALTER TABLE courses ADD CONSTRAINT ck_courses_code_caps CHECK (code = upper(code)) NOT VALID")
    op.execute("ALTER TABLE courses VALIDATE CONSTRAINT ck_courses_code_caps")


def downgrade() -> None:
    op.execute("ALTER TABLE courses DROP CONSTRAINT ck_courses_code_caps")
'''


def migrations_with_0003(tmp_path: Path, allow: str = "") -> Config:
    """A copy of the real migrations with revision 0003 added after head."""
    location = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, location, ignore=shutil.ignore_patterns("__pycache__"))
    path = location / "versions" / "20261201_0003_course_codes.py"
    path.write_text(REVISION_0003.format(allow=allow))
    config = Config()
    config.set_main_option("script_location", str(location))
    return config


def test_every_revision_lints_clean() -> None:
    reports = lint_revisions(alembic_config())
    assert [report.revision for report in reports] == ["0001", "0002"]
    assert [report.describe() for report in reports if not report.clean] == []


def test_validating_in_the_transaction_of_the_add_is_reported() -> None:
    findings, unused = lint_sql(VALIDATED_IN_ONE_TRANSACTION, label="same.sql")
    assert [(finding.rule, finding.line) for finding in findings] == [("constraint-missing-not-valid", 6)]
    assert findings[0].statement == "ALTER TABLE courses VALIDATE CONSTRAINT ck_courses_code_caps;"
    assert unused == []


def test_validating_after_a_commit_is_not_reported() -> None:
    split = VALIDATED_IN_ONE_TRANSACTION.replace("NOT VALID;\n", "NOT VALID;\nCOMMIT;\n")
    findings, _ = lint_sql(split.removesuffix("COMMIT;\n"), label="split.sql")
    assert "constraint-missing-not-valid" not in {finding.rule for finding in findings}


def test_a_revision_validating_in_the_same_transaction_fails_naming_the_rule(tmp_path: Path) -> None:
    reports = {report.revision: report for report in lint_revisions(migrations_with_0003(tmp_path))}

    assert reports["0001"].clean
    assert reports["0002"].clean
    failed = reports["0003"]
    assert {finding.rule for finding in failed.findings} == {"constraint-missing-not-valid"}
    message = failed.describe()
    assert "20261201_0003_course_codes.py (revision 0003): squawk constraint-missing-not-valid" in message
    assert "`alembic upgrade 0002:0003 --sql`" in message
    assert "ALTER TABLE courses VALIDATE CONSTRAINT ck_courses_code_caps;" in message
    assert 'SQUAWK_ALLOW = {"rule-name": "why"}' in message


def test_an_allowed_rule_passes_and_an_allowance_nothing_needs_is_reported(tmp_path: Path) -> None:
    allowed = 'SQUAWK_ALLOW = {"constraint-missing-not-valid": "courses is tiny"}'
    (report,) = [
        r for r in lint_revisions(migrations_with_0003(tmp_path / "a", allowed)) if r.revision == "0003"
    ]
    assert report.clean

    stale = 'SQUAWK_ALLOW = {"constraint-missing-not-valid": "tiny", "prefer-text-field": "a leftover"}'
    (report,) = [
        r for r in lint_revisions(migrations_with_0003(tmp_path / "b", stale)) if r.revision == "0003"
    ]
    assert report.unused_allowances == ["prefer-text-field"]
    assert "SQUAWK_ALLOW allows prefer-text-field, which its SQL no longer raises" in report.describe()


@pytest.mark.parametrize(
    ("allow", "error"),
    [
        (
            'SQUAWK_ALLOW = {"constraint-missing-not-valid": ""}',
            "must map each squawk rule name to the reason",
        ),
        ('SQUAWK_ALLOW = ["constraint-missing-not-valid"]', "must map each squawk rule name to the reason"),
        ('SQUAWK_ALLOW = {"no-such-rule": "why"}', "invalid rule name no-such-rule"),
    ],
)
def test_an_allowance_without_a_reason_or_a_known_rule_is_refused(
    tmp_path: Path, allow: str, error: str
) -> None:
    with pytest.raises(LintError, match=error):
        lint_revisions(migrations_with_0003(tmp_path, allow))


def test_a_merge_revision_is_refused_with_what_to_do(tmp_path: Path) -> None:
    config = migrations_with_0003(tmp_path)
    versions = tmp_path / "migrations" / "versions"
    sibling = (versions / "20261201_0003_course_codes.py").read_text().replace('"0003"', '"0003b"')
    (versions / "20261201_0003b_sibling.py").write_text(sibling)
    merge = REVISION_0003.format(allow="").replace('"0003"', '"0004"')
    merge = merge.replace('down_revision = "0002"', 'down_revision = ("0003", "0003b")')
    (versions / "20261202_0004_merge.py").write_text(merge)

    with pytest.raises(
        LintError, match=r"revision 0004 merges 0003, 0003b; .* give the history a straight line"
    ):
        lint_revisions(config)
