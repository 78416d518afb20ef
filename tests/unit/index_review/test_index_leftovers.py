"""Which invalid indexes an unfinished dbops build left: by name, on catalogue rows built by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models.index_review import Finding, FindingKind
from models.settings import Settings, load_settings
from tasks.index_review.index_findings import invalid_findings
from tasks.index_review.leftovers import builds_by_name, left_by_build_of, leftover_origin
from tests.unit.index_review.test_index_redundancy import index

BUILDS = {"ix_users_role": "the index the models declare"}


@pytest.fixture
def settings() -> Settings:
    return load_settings(_env_file=None)


@pytest.mark.parametrize(
    ("name", "origin"),
    [
        ("ix_counters_hits_ccnew", "an unfinished REINDEX INDEX CONCURRENTLY of ix_counters_hits"),
        ("ix_counters_hits_ccnew2", "an unfinished REINDEX INDEX CONCURRENTLY of ix_counters_hits"),
        ("ix_counters_hits_ccold", "an unfinished REINDEX INDEX CONCURRENTLY of ix_counters_hits"),
        ("ix_users_role", "an unfinished build of the index the models declare"),
        ("ix_codes_code", None),  # someone else's failed build: reported, never dropped unasked
        ("ix_ccnew_reports", None),
    ],
)
def test_a_leftover_is_known_by_its_name(name: str, origin: str | None) -> None:
    assert leftover_origin(name, BUILDS) == origin


def test_a_build_owns_its_index_and_its_reindex_companions_only() -> None:
    assert left_by_build_of("ix_a", "ix_a")
    assert left_by_build_of("ix_a_ccnew", "ix_a")
    assert left_by_build_of("ix_a_ccold1", "ix_a")
    assert not left_by_build_of("ix_ab_ccnew", "ix_a")
    assert not left_by_build_of("ix_a_ccnew", "ix_ab")  # a short name is never cut
    assert not left_by_build_of("ix_b", "ix_a")


def test_a_long_name_is_matched_by_the_prefix_its_companion_kept() -> None:
    long = "ix_" + "a" * 60  # 63 bytes
    companion = long[: 63 - len("_ccnew")] + "_ccnew"
    assert left_by_build_of(companion, long)
    assert not left_by_build_of(companion, "ix_" + "b" * 60)


def test_the_indexes_a_foreign_key_finding_builds_are_dbops_builds() -> None:
    finding = Finding.about(
        FindingKind.FOREIGN_KEY_WITHOUT_INDEX, "fk_x", index="ix_t_a", evidence={}, recommendation=""
    )
    unused = Finding.about(FindingKind.UNUSED, "ix_t_b", index="ix_t_b", evidence={}, recommendation="")

    builds = builds_by_name([finding, unused], ["ix_declared"])

    assert builds == {
        "ix_declared": "the index the models declare",
        "ix_t_a": "the index fk-without-index:fk_x asks for",
    }


def test_an_invalid_leftover_says_what_left_it_and_has_no_undo(settings: Settings) -> None:
    leftover = replace(index("ix_code_ccnew", "code"), is_valid=False)
    foreign = replace(index("ix_codes_code", "code"), is_valid=False)

    findings = {f.index: f for f in invalid_findings([leftover, foreign], set(), settings, BUILDS)}

    assert (
        findings["ix_code_ccnew"].evidence["left_by"] == "an unfinished REINDEX INDEX CONCURRENTLY of ix_code"
    )
    assert "the next review-indexes --apply drops it" in findings["ix_code_ccnew"].recommendation
    assert findings["ix_code_ccnew"].undo_sql == []
    assert "left_by" not in findings["ix_codes_code"].evidence
    assert findings["ix_codes_code"].undo_sql  # a drop of someone's index can be undone
