"""``dbops serve`` as a long-lived service against a real Prefect server that goes away and comes back:
it outlives the runner's error threshold without pausing anything (and keeps an operator's pause),
serves runs created afterwards, and stops within 10 s of SIGTERM while the API is down.

The outage test lowers the poll interval and the client's retries so that Prefect's runner reaches
its threshold (three failed polls in a row, "Service exceeded error threshold") in seconds, not the
four minutes the defaults take; the threshold and what the runner does on reaching it are Prefect's
own. The SIGTERM test keeps the defaults, under which every request to a dead API is retried for
about a minute.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy.engine import URL

from deployments.service import descendants
from models.settings import Settings
from tasks.postgres.embedded import free_port
from tasks.schema.lock import MIGRATION_LOCK_KEY
from tests.helpers import environment_without_dbops, wait_for
from tests.integration.conftest import REPO_ROOT, connect, server_directory, url_string

# Prefect's runner and server; the database only holds what a served run migrates and seeds.
pytestmark = pytest.mark.any_major
SERVED = {
    "nightly-backup",
    "weekly-maintenance",
    "restore",
    "restore-rollback",
    "restore-tables",
    "restore-rehearsal",
    "migration-plan",
    "index-review",
    "migrate-and-seed",
}
#: Each request retried twice (2 + 4 s), a poll every 2 s: the runner gives up some 20 s into an outage.
#: Not fewer retries: the served runs inherit the setting, and a server just started may answer 503.
FAST_THRESHOLD = {"PREFECT_RUNNER_POLL_FREQUENCY": "2", "PREFECT_CLIENT_MAX_RETRIES": "2"}


@dataclass
class Stack:
    """A Prefect server (SQLite under ``home``, one port) that can be stopped and started again, and
    ``dbops serve`` against it, its output in ``log``."""

    environment: dict[str, str]
    port: int
    log: Path
    server: subprocess.Popen[bytes] | None = None
    served: subprocess.Popen[bytes] | None = None
    starts: list[float] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start_server(self) -> None:
        prefect = str(Path(sys.executable).with_name("prefect"))
        self.server = subprocess.Popen(
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._healthy, "the Prefect server did not answer", timeout=120)

    def stop_server(self) -> None:
        assert self.server is not None
        self.server.terminate()
        self.server.wait(timeout=30)
        self.server = None

    def start_serving(self, **overrides: str) -> None:
        with self.log.open("ab") as log:
            self.served = subprocess.Popen(
                [str(Path(sys.executable).with_name("dbops")), "serve"],
                cwd=REPO_ROOT,
                env=self.environment | overrides,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, count: int = 1, timeout: float = 120) -> None:
        def seen() -> bool:
            assert self.served is not None
            assert self.served.poll() is None, self.output()[-3000:]
            return self.output().count(text) >= count

        wait_for(seen, f"dbops serve never logged {text!r} {count} times", timeout=timeout)

    def deployments(self) -> dict[str, dict[str, object]]:
        answer = self._request("POST", "/deployments/filter", json={})
        return {deployment["name"]: deployment for deployment in answer.json()}

    def set_paused(self, name: str, paused: bool) -> None:
        deployment_id = self.deployments()[name]["id"]
        self._request("PATCH", f"/deployments/{deployment_id}", json={"paused": paused})

    def _request(self, method: str, path: str, **arguments: Any) -> httpx.Response:
        """One API call, retried on 503 as Prefect's own client does: a SQLite server answers 503 while
        ``dbops serve`` is writing its deployments back after the outage."""
        for _ in range(10):
            answer = httpx.request(method, f"{self.api}{path}", timeout=30, **arguments)
            if answer.status_code != 503:
                break
            time.sleep(1)
        answer.raise_for_status()
        return answer

    def stop_serving(self) -> tuple[int, float]:
        """SIGTERM, then the exit status and how long it took."""
        assert self.served is not None
        began = time.monotonic()
        self.served.send_signal(signal.SIGTERM)
        try:
            status = self.served.wait(timeout=30)
        finally:
            if self.served.poll() is None:
                self.served.kill()
        return status, time.monotonic() - began

    def _healthy(self) -> bool:
        assert self.server is not None
        assert self.server.poll() is None, "the Prefect server exited"
        try:
            return httpx.get(f"{self.api}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture
def stack(migrated_url: URL, settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    with server_directory() as prefect_home:
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith(("DBOPS_", "PREFECT_"))
        }
        port = free_port()
        environment |= {
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "DBOPS_DATABASE_URL": url_string(migrated_url),
            "DBOPS_BACKUP_URL": str(tmp_path / "backups"),
            "DBOPS_HOME": str(settings.home),
            "DBOPS_BCRYPT_ROUNDS": "4",
            "PYTHONWARNINGS": "ignore",
        }
        stack = Stack(environment=environment, port=port, log=tmp_path / "serve.log")
        try:
            stack.start_server()
            yield stack
        finally:
            for process in (stack.served, stack.server):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait(timeout=30)


def _create_run(stack: Stack, deployment_id: str) -> str:
    answers: list[httpx.Response] = []

    def created() -> bool:  # a server just started may answer 503 a while; Prefect's client retries too
        url = f"{stack.api}/deployments/{deployment_id}/create_flow_run"
        answers.append(httpx.post(url, json={}, timeout=30))
        return answers[-1].status_code != 503

    wait_for(created, "the server kept answering 503 to a new run", timeout=60)
    answers[-1].raise_for_status()
    return str(answers[-1].json()["id"])


def _run_to_completion(stack: Stack, deployment_id: str) -> dict[str, object]:
    run_id = _create_run(stack, deployment_id)
    final: dict[str, object] = {}

    def finished() -> bool:
        run = httpx.get(f"{stack.api}/flow_runs/{run_id}", timeout=30).json()
        final.update(run)
        return run["state_type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

    wait_for(finished, "the run created after the outage never finished", timeout=240)
    return final


def test_an_outage_past_the_runners_threshold_pauses_nothing_and_serving_resumes(stack: Stack) -> None:
    stack.start_serving(**FAST_THRESHOLD)
    stack.wait_for_output(f"Serving {len(SERVED)} deployments")
    assert stack.deployments().keys() >= SERVED
    stack.set_paused("restore-rehearsal", True)  # an operator's pause, which must survive the outage

    outage_began = time.monotonic()
    stack.stop_server()
    # Prefect's runner gives up: the incident's "Service exceeded error threshold" ...
    stack.wait_for_output("Prefect's runner ended (RuntimeError: Service exceeded error threshold.)")
    threshold_after = time.monotonic() - outage_began
    # ... and the API stays away through several back-off steps after that.
    stack.wait_for_output("next check in 8 s")
    stack.start_server()
    outage = time.monotonic() - outage_began
    stack.wait_for_output("The Prefect API answers again")
    stack.wait_for_output(f"Serving {len(SERVED)} deployments", count=2)
    back_after = time.monotonic() - outage_began

    assert stack.served is not None
    assert stack.served.poll() is None
    deployments = stack.deployments()
    paused = {name: deployments[name]["paused"] for name in SERVED}
    assert paused == dict.fromkeys(SERVED, False) | {"restore-rehearsal": True}
    assert "Pausing all deployments" not in stack.output()
    stack.set_paused("restore-rehearsal", False)
    run = _run_to_completion(stack, str(deployments["migrate-and-seed"]["id"]))
    assert run["state_type"] == "COMPLETED", (run["state"], stack.output()[-4000:])
    check = subprocess.run(
        [str(Path(sys.executable).with_name("dbops")), "serve", "--check"],
        env=stack.environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "PAUSED" not in check.stdout
    assert "last ran" in next(line for line in check.stdout.splitlines() if "migrate-and-seed" in line)
    status, took = stack.stop_serving()
    assert (status, took < 10) == (0, True), (status, took)
    print(
        f"runner gave up {threshold_after:.0f} s into the outage; API down {outage:.0f} s; "
        f"serving again {back_after:.0f} s after the outage began; stopped in {took:.1f} s"
    )


def test_sigterm_with_the_api_down_stops_within_10_seconds(stack: Stack) -> None:
    stack.start_serving()  # Prefect's defaults: each request to a dead API is retried for a minute
    stack.wait_for_output(f"Serving {len(SERVED)} deployments")
    stack.stop_server()
    time.sleep(3)  # the runner is polling a dead API now; nothing observable says so sooner

    status, took = stack.stop_serving()

    assert status == 0, stack.output()[-3000:]
    assert took < 10, took
    print(f"stopped {took:.1f} s after SIGTERM with the API down")


def _waiting_for_an_advisory_lock(url: URL) -> int:
    with connect(url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
    assert row is not None
    return cast(int, row[0])


def test_sigterm_with_a_run_in_flight_and_the_api_down_leaves_no_run_behind(
    stack: Stack, migrated_url: URL
) -> None:
    stack.start_serving()
    stack.wait_for_output(f"Serving {len(SERVED)} deployments")
    deployment_id = str(stack.deployments()["migrate-and-seed"]["id"])
    with connect(migrated_url) as holder:  # the run will queue behind this migration lock
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        _create_run(stack, deployment_id)
        queued = "the run never queued for the lock"
        wait_for(lambda: _waiting_for_an_advisory_lock(migrated_url) == 1, queued, timeout=180)
        assert stack.served is not None
        running = descendants(stack.served.pid)  # the flow run's process, and any of its children
        assert running
        stack.stop_server()

        status, took = stack.stop_serving()

        assert took < 10, took
        assert status == 0, stack.output()[-3000:]
        # PostgreSQL notices a vanished client only when its backend wakes, so the processes are the oracle
        gone = "the run outlived dbops serve"
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in running), gone, timeout=10)
    print(f"stopped {took:.1f} s after SIGTERM with a run in flight and the API down")


def test_check_says_in_one_line_that_the_api_does_not_answer(tmp_path: Path) -> None:
    api = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there

    check = subprocess.run(
        [str(Path(sys.executable).with_name("dbops")), "serve", "--check"],
        env=environment_without_dbops(
            PREFECT_API_URL=api, DBOPS_HOME=str(tmp_path / "home"), PYTHONWARNINGS="ignore"
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert check.returncode == 2
    assert check.stderr.startswith(f"dbops: error: the Prefect API at {api} does not answer."), check.stderr
    assert len(check.stderr.strip().splitlines()) == 1, check.stderr
