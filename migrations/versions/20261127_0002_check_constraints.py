"""check constraints: positive course durations, non-negative fees, decisions after submission

Written by hand: autogenerate does not detect CHECK constraints. The constraints are added NOT VALID
and then validated, so the ACCESS EXCLUSIVE lock is held only for the catalogue change and the scan
of existing rows runs under SHARE UPDATE EXCLUSIVE, which lets the application keep reading and
writing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 20:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONSTRAINTS = (
    ("courses", "ck_courses_duration_months_positive", "duration_months > 0"),
    ("courses", "ck_courses_tuition_fee_not_negative", "tuition_fee >= 0"),
    ("applications", "ck_applications_decided_after_submitted", "decided_at >= submitted_at"),
)


def upgrade() -> None:
    for table, name, condition in CONSTRAINTS:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition}) NOT VALID")
    for table, name, _ in CONSTRAINTS:
        op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def downgrade() -> None:
    for table, name, _ in reversed(CONSTRAINTS):
        op.drop_constraint(op.f(name), table, type_="check")
