"""The integrity report: what ``validate-integrity`` found, check by check.

The restore rehearsal compares ``row_counts`` with a backup's manifest, and the CLI's ``--json``
output round-trips into :class:`IntegrityReport`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

MAX_SAMPLES = 10


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class CheckResult(BaseModel):
    name: str
    severity: Severity
    status: CheckStatus
    detail: str = Field(description="One line: what was found, or what was checked.")
    samples: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_SAMPLES)
    elapsed_seconds: float = Field(
        default=0.0,
        description="Time the check's own work took, its reads included; they run on several connections "
        "at once, so the checks' times add up to more than the validation's wall time.",
    )

    @property
    def is_error(self) -> bool:
        return self.status is CheckStatus.FAILED and self.severity is Severity.ERROR

    @property
    def is_warning(self) -> bool:
        """A failed warning-severity check, or a check skipped where it should have run."""
        if self.status is CheckStatus.FAILED:
            return self.severity is Severity.WARNING
        return self.status is CheckStatus.SKIPPED and self.severity is Severity.WARNING


class IntegrityReport(BaseModel):
    database: str
    server_version: str
    revision: str | None
    checked_at: datetime
    elapsed_seconds: float = Field(description="Wall time of the whole validation.")
    parallelism: int | None = Field(
        default=None, description="Connections the checks ran on; None in an earlier release's report."
    )
    row_counts: dict[str, int]
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        """No error-severity check failed (warnings allowed)."""
        return not self.errors

    @property
    def errors(self) -> list[CheckResult]:
        return [check for check in self.checks if check.is_error]

    @property
    def warnings(self) -> list[CheckResult]:
        return [check for check in self.checks if check.is_warning]
