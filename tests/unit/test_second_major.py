"""Which server the suite's second pass runs on (``make test``, through ``tests.second_major``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.second_major import main, second_major

PG15, PG16, PG18 = Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"), Path("/p/18/bin")


def test_the_newest_major_other_than_the_wheels_is_chosen() -> None:
    assert second_major([(15, PG15)], 18) == (15, PG15)
    assert second_major([(15, PG15), (16, PG16), (18, PG18)], 18) == (16, PG16)


def test_only_the_wheels_major_or_nothing_leaves_no_second_pass() -> None:
    assert second_major([(18, PG18)], 18) is None
    assert second_major([], 18) is None


@pytest.mark.parametrize(("ci", "returncode"), [("true", 1), ("", 0)])
def test_without_a_second_major_ci_fails_and_a_developer_is_told(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ci: str, returncode: int
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr("tests.second_major.system_servers", lambda: [])

    assert main(["-m", "not e2e"]) == returncode
    assert "no PostgreSQL server of a major other than the wheel's" in capsys.readouterr().err


@pytest.mark.parametrize(("pytest_exit", "returncode"), [(0, 0), (1, 1), (5, 1)])
def test_the_pass_runs_on_the_chosen_server_and_selecting_nothing_fails(
    monkeypatch: pytest.MonkeyPatch, pytest_exit: int, returncode: int
) -> None:
    calls: list[tuple[list[str], dict[str, str]]] = []

    def call(command: list[str], env: dict[str, str], **_: Any) -> int:
        calls.append((command, env))
        return pytest_exit

    monkeypatch.setattr("tests.second_major.system_servers", lambda: [(15, PG15)])
    monkeypatch.setattr("tests.second_major.subprocess.call", call)

    assert main(["-m", "not e2e"]) == returncode
    ((command, env),) = calls
    assert command[1:] == ["-m", "pytest", "tests/integration", "-m", "not e2e"]
    assert env["DBOPS_PG_BINDIR"] == str(PG15)
