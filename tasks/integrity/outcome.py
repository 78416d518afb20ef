"""What a check function returns; the runner adds its name, severity and timing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.integrity import MAX_SAMPLES, CheckStatus, Severity


@dataclass(frozen=True)
class Outcome:
    status: CheckStatus
    detail: str
    samples: list[dict[str, Any]] = field(default_factory=list)
    #: Overrides the check's severity, e.g. amcheck: corruption is an error, no amcheck a warning.
    severity: Severity | None = None


def passed(detail: str) -> Outcome:
    return Outcome(CheckStatus.PASSED, detail)


def failed(problems: list[str], samples: list[dict[str, Any]] | None = None) -> Outcome:
    """A failure whose detail lists the first problems on one line, and at most MAX_SAMPLES samples."""
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    return Outcome(CheckStatus.FAILED, shown, (samples or [])[:MAX_SAMPLES])


def skipped(detail: str, severity: Severity | None = None) -> Outcome:
    return Outcome(CheckStatus.SKIPPED, detail, severity=severity)


def outcome_from(problems: list[str], ok_detail: str, samples: list[dict[str, Any]] | None = None) -> Outcome:
    return failed(problems, samples) if problems else passed(ok_detail)
