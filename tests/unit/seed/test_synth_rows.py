from __future__ import annotations

import pytest

from tasks.seed.synth_rows import (
    SynthPlan,
    application_rows,
    audit_log_rows,
    copy_escape,
    event_rows,
    user_ids,
    user_rows,
)
from tests.helpers import synth_plan

PLAN = synth_plan(users=50, applications=120, audit_logs=12_000, events=3_000, seed=11)
COURSES = [f"00000000-0000-4000-8000-{index:012d}" for index in range(6)]
UNIVERSITIES = ["10000000-0000-4000-8000-000000000001"]


def everything(plan: SynthPlan) -> bytes:
    ids = user_ids(plan)
    return b"".join(
        [
            *user_rows(plan, ids, UNIVERSITIES),
            *application_rows(plan, ids, COURSES),
            *audit_log_rows(plan, ids),
            *event_rows(plan, ids, UNIVERSITIES),
        ]
    )


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    assert everything(PLAN) == everything(PLAN)
    other = synth_plan(**{**PLAN.__dict__, "seed": 12})
    assert everything(other) != everything(PLAN)


def test_row_counts_and_columns() -> None:
    lines = b"".join(audit_log_rows(PLAN, user_ids(PLAN))).decode().splitlines()
    assert len(lines) == 12_000
    assert all(line.count("\t") == 5 for line in lines)


def test_application_pairs_are_distinct_and_capacity_is_checked() -> None:
    ids = user_ids(PLAN)
    lines = b"".join(application_rows(PLAN, ids, COURSES)).decode().splitlines()
    pairs = {tuple(line.split("\t")[1:3]) for line in lines}
    assert len(pairs) == len(lines) == 120
    too_many = synth_plan(**{**PLAN.__dict__, "applications": 50 * 6 + 1})
    with pytest.raises(ValueError, match="301 applications need 301 distinct"):
        application_rows(too_many, ids, COURSES)


def test_timestamps_stay_inside_the_window() -> None:
    lines = b"".join(event_rows(PLAN, user_ids(PLAN), UNIVERSITIES)).decode().splitlines()
    stamps = sorted(line.rsplit("\t", 1)[1] for line in lines)
    assert stamps[0] >= "2026-10-02 00:00:00+00"
    assert stamps[-1] < "2026-11-01 00:00:00+00"


def test_copy_escape_protects_the_text_format() -> None:
    assert copy_escape('{"a":"x\\ny"}\t\n') == '{"a":"x\\\\ny"}\\t\\n'
