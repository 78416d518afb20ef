"""How a validation orders its reads and its report, and how many connections it uses."""

from __future__ import annotations

import pytest

from tasks.integrity.runner import CATALOGUE
from tasks.integrity.schedule import (
    REMOTE_DEFAULT_PARALLELISM,
    Read,
    in_catalogue_order,
    is_local,
    largest_first,
    parallelism,
)


def _read(check: str, cost: int) -> Read:
    return Read(check, cost, lambda: None)


def test_reads_are_taken_largest_first_whatever_their_check() -> None:
    reads = [
        _read("amcheck", 5),
        _read("relations", 540),
        _read("row counts", 130),
        _read("amcheck", 62),
        _read("uniqueness", 0),
    ]
    assert [(read.check, read.cost) for read in largest_first(reads)] == [
        ("relations", 540),
        ("row counts", 130),
        ("amcheck", 62),
        ("amcheck", 5),
        ("uniqueness", 0),
    ]


def test_equal_reads_keep_the_catalogue_order() -> None:
    reads = [_read("uniqueness", 8), _read("relations", 8), _read("amcheck", 8), _read("relations", 9)]
    assert [read.check for read in largest_first(reads)] == [
        "relations",
        "uniqueness",
        "relations",
        "amcheck",
    ]


def test_the_report_lists_checks_in_catalogue_order_however_they_finished() -> None:
    names = [check.name for check in CATALOGUE]
    finished_backwards = {name: f"result of {name}" for name in reversed(names)}
    assert in_catalogue_order(finished_backwards, names) == [f"result of {name}" for name in names]


@pytest.mark.parametrize(
    "host", [None, "", "localhost", "127.0.0.1", "::1", "/var/run/postgresql", "@abstract-socket"]
)
def test_a_server_on_this_machine_gets_its_cores(host: str | None) -> None:
    assert is_local(host)
    assert parallelism(None, host, local_cores=6) == 6


@pytest.mark.parametrize("host", ["db.example.org", "10.0.0.5", "127.0.0.2.example"])
def test_a_server_elsewhere_gets_the_remote_default(host: str) -> None:
    assert not is_local(host)
    assert parallelism(None, host, local_cores=6) == REMOTE_DEFAULT_PARALLELISM == 2


def test_the_setting_wins_and_unknown_local_cores_fall_back() -> None:
    assert parallelism(1, "localhost", local_cores=6) == 1
    assert parallelism(3, "db.example.org", local_cores=None) == 3
    assert parallelism(None, "localhost", local_cores=None) == REMOTE_DEFAULT_PARALLELISM
