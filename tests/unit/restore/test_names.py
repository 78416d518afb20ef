"""Names of the databases a restore makes beside its target fit PostgreSQL's 63 bytes."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from tasks.restore.target import derived_name

NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def test_a_multibyte_target_is_shortened_by_bytes_on_a_character_boundary() -> None:
    target = "ü" * 40  # 80 bytes
    name = derived_name(target, "_restoring", NOW)
    assert len(name.encode()) <= 63
    assert name.endswith("_restoring_20261203t093000")
    assert name.startswith("ü" * 18)


@given(st.text(min_size=1, max_size=80))
def test_every_derived_name_fits_and_keeps_its_suffix(target: str) -> None:
    name = derived_name(target, "_pre_restore", NOW)
    assert len(name.encode()) <= 63
    assert name.endswith("_pre_restore_20261203t093000")
    assert target.startswith(name.removesuffix("_pre_restore_20261203t093000"))
