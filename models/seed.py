"""The seed file's schema: what ``models/seed.yaml`` may contain, validated before any write.

Unknown keys are refused (a typo must not be silently ignored), and every error names the field by
its path in the file, e.g. ``universities[1].courses[0].duration_months``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from models.errors import SeedFileError

BUNDLED_SEED_FILE = Path(__file__).with_name("seed.yaml")

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=100)]
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320
    ),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeedCourse(_Strict):
    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
    name: Name
    degree_level: Annotated[str, StringConstraints(pattern=r"^(BACHELOR|MASTER|DOCTORATE|CERTIFICATE)$")]
    duration_months: Annotated[int, Field(ge=1, le=120)]
    tuition_fee: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]
    description: str | None = None
    is_active: bool = True
    metadata: dict[str, Any] = Field(default_factory=dict)


class SeedUniversity(_Strict):
    slug: Slug
    name: Name
    city: Name
    country: Name
    website: Annotated[str, StringConstraints(pattern=r"^https://\S+$", max_length=300)]
    description: str | None = None
    is_verified: bool = True
    settings: dict[str, Any] = Field(default_factory=dict)
    courses: Annotated[list[SeedCourse], Field(min_length=1)]

    @model_validator(mode="after")
    def _course_codes_unique(self) -> SeedUniversity:
        codes = [course.code for course in self.courses]
        duplicates = sorted({code for code in codes if codes.count(code) > 1})
        if duplicates:
            raise ValueError(f"course codes repeat within {self.slug}: {', '.join(duplicates)}")
        return self


class SeedStaffUser(_Strict):
    email: Email
    first_name: Name
    last_name: Name
    university: Slug


class SeedAdmin(_Strict):
    first_name: Name
    last_name: Name


class SeedDocument(_Strict):
    admin: SeedAdmin
    universities: Annotated[list[SeedUniversity], Field(min_length=1)]
    staff: list[SeedStaffUser] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_resolve(self) -> SeedDocument:
        slugs = [university.slug for university in self.universities]
        repeated = sorted({slug for slug in slugs if slugs.count(slug) > 1})
        if repeated:
            raise ValueError(f"university slugs repeat: {', '.join(repeated)}")
        for staff in self.staff:
            if staff.university not in slugs:
                raise ValueError(
                    f"staff user {staff.email} names university {staff.university!r}, which is not seeded"
                )
        emails = [staff.email for staff in self.staff]
        if len(set(emails)) != len(emails):
            raise ValueError("staff emails repeat")
        return self


def parse_seed_document(text: str, source: str) -> SeedDocument:
    """Parse and validate seed YAML; any problem becomes one :class:`SeedFileError` naming the field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None)
        raise SeedFileError(
            f"seed file {source} is not valid YAML{where}",
            detail=problem,
            hint="fix the file; nothing was written",
        ) from None
    try:
        return SeedDocument.model_validate(raw)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        field = _field_path(first["loc"]) or "the document"
        more = f" (and {error.error_count() - 1} more problem(s))" if error.error_count() > 1 else ""
        raise SeedFileError(
            f"seed file {source} is invalid: {field}: {first['msg']}{more}",
            hint="fix the seed file; nothing was written",
        ) from None


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path
