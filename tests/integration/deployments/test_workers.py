"""Scaling out: two process workers polling one work pool take a restore and a backup submitted at the
same moment, and the maintenance slot makes them run one after the other."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.deployments.runner import RunnerDeployment
from prefect.settings import PREFECT_API_URL
from sqlalchemy.engine import URL

from flows.backup import backup_flow
from flows.restore import restore_flow
from models.settings import Settings
from tasks.backup.dump import backup
from tasks.storage import open_store
from tests.helpers import environment_without_dbops
from tests.integration.conftest import REPO_ROOT, main_task_interval, url_string

# What this proves (Prefect workers taking turns in the maintenance slot) is the same whatever major
# the flows reach, so make test's second pass leaves it out.
pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.any_major]
WORKER_START_SECONDS = 60


@pytest.fixture
def pool_with_two_workers(seeded_url: URL, settings: Settings, tmp_path: Path) -> Iterator[str]:
    pool = f"dbops-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    environment = environment_without_dbops()
    environment |= {
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "DBOPS_DATABASE_URL": url_string(seeded_url),
        "DBOPS_BACKUP_URL": str(tmp_path / "backups"),
        "DBOPS_HOME": str(settings.home),
        "PYTHONWARNINGS": "ignore",
    }
    workers = [
        subprocess.Popen(
            [
                str(Path(sys.executable).with_name("prefect")),
                "worker",
                "start",
                "--pool",
                pool,
                "--type",
                "process",
                "--name",
                f"worker-{index}",
            ],
            cwd=REPO_ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for index in (1, 2)
    ]
    try:
        _wait_for_workers(pool, 2)
        yield pool
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:  # slow to stop on a busy machine; its stop is not the subject
                worker.kill()
                worker.wait()


def _wait_for_workers(pool: str, count: int) -> None:
    deadline = time.monotonic() + WORKER_START_SECONDS
    with get_client(sync_client=True) as client:
        while len(client.read_workers_for_work_pool(pool)) < count:
            assert time.monotonic() < deadline, "the workers did not register in time"
            time.sleep(0.5)


def test_two_workers_run_a_restore_and_a_backup_one_after_the_other(
    seeded_url: URL, settings: Settings, tmp_path: Path, pool_with_two_workers: str
) -> None:
    local = settings.model_copy(update={"backup_url": str(tmp_path / "backups")})
    backup(seeded_url, local, open_store(local))  # something to restore
    target = str(seeded_url.database)
    for flow, name in ((restore_flow, "restore"), (backup_flow, "backup")):
        # Flow runs start in this checkout, as prefect.yaml's pull step has them start in /opt/dbops.
        deployment = flow.to_deployment(name, job_variables={"working_dir": str(REPO_ROOT)})
        cast(RunnerDeployment, deployment).apply(work_pool_name=pool_with_two_workers)

    submitted = [
        cast(
            FlowRun,
            run_deployment(
                "restore/restore",
                parameters={"target": target, "confirm": target, "approval": False},
                timeout=0,
            ),
        ),
        cast(FlowRun, run_deployment("backup/backup", timeout=0)),
    ]
    runs = _wait_until_final([run.id for run in submitted])

    assert all(run.state is not None and run.state.is_completed() for run in runs), [r.state for r in runs]
    (_, first_end), (second_start, _) = sorted(main_task_interval(run.id) for run in runs)
    assert first_end <= second_start


def _wait_until_final(ids: list[uuid.UUID]) -> list[FlowRun]:
    deadline = time.monotonic() + 300
    with get_client(sync_client=True) as client:
        while True:
            runs = [client.read_flow_run(run_id) for run_id in ids]
            if all(run.state is not None and run.state.is_final() for run in runs):
                return runs
            assert time.monotonic() < deadline, [run.state for run in runs]
            time.sleep(1)
