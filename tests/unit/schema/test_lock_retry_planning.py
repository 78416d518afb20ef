"""Pure parts of a migration's lock retries: the pauses between attempts and which revision is next."""

from __future__ import annotations

import random

import pytest

from models.results import MigrationDirection
from models.schema import is_modelled
from tasks.schema.lock_waits import BACKOFF_CAP_SECONDS, backoff_seconds, longest_total_backoff
from tasks.schema.migrate import next_revision, script_directory


@pytest.mark.parametrize("seed", range(20))
def test_each_pause_lies_in_the_upper_half_of_a_doubling_capped_ceiling(seed: int) -> None:
    rng = random.Random(seed)
    for attempt, ceiling in enumerate([0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0], start=1):
        assert ceiling / 2 <= backoff_seconds(attempt, rng) <= ceiling <= BACKOFF_CAP_SECONDS


def test_the_pauses_are_jittered() -> None:
    rng = random.Random(7)
    assert len({backoff_seconds(3, rng) for _ in range(10)}) == 10


def test_the_total_of_the_pauses_is_bounded() -> None:
    assert longest_total_backoff(0) == 0
    assert longest_total_backoff(5) == 0.5 + 1 + 2 + 4 + 8
    rng = random.Random(1)
    assert sum(backoff_seconds(attempt, rng) for attempt in range(1, 6)) <= longest_total_backoff(5)


def test_the_next_revision_is_the_one_a_retry_would_run() -> None:
    script = script_directory()
    assert next_revision(script, None, "0002", MigrationDirection.UPGRADE) == "0001"
    assert next_revision(script, "0001", "0002", MigrationDirection.UPGRADE) == "0002"
    assert next_revision(script, "0002", None, MigrationDirection.DOWNGRADE) == "0002"
    assert next_revision(script, "0002", "0001", MigrationDirection.DOWNGRADE) == "0002"


def test_only_the_migrations_bookkeeping_tables_are_left_out_of_drift() -> None:
    assert not is_modelled("dbops_applied_revisions", "table", {})
    assert is_modelled("users", "table", {})
    assert is_modelled("dbops_applied_revisions", "column", {"table_name": "x"})
