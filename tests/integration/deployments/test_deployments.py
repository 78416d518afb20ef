"""The deployments as the Prefect API sees them, and the scheduled chains run for real."""

from __future__ import annotations

import subprocess
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists
from prefect.settings import PREFECT_API_URL
from sqlalchemy.engine import URL

from deployments.definitions import runner_deployments
from flows.scheduled import nightly_backup_flow, weekly_maintenance_flow
from models.rehearsal import RehearsalRecord
from models.settings import Settings
from tests.helpers import environment_without_dbops
from tests.integration.conftest import REPO_ROOT, connect, point_flows_at

pytestmark = pytest.mark.usefixtures("prefect_api")


def read_back(settings: Settings) -> dict[str, Any]:
    for deployment in runner_deployments(settings):
        deployment.apply()
    with get_client(sync_client=True) as client:
        return {
            name: client.read_deployment_by_name(name)
            for name in (
                "nightly-backup/nightly-backup",
                "weekly-maintenance/weekly-maintenance",
                "restore/restore",
                "restore-rollback/restore-rollback",
                "restore-tables/restore-tables",
                "restore-rehearsal/restore-rehearsal",
                "migration-plan/migration-plan",
                "index-review/index-review",
                "migrate-and-seed/migrate-and-seed",
            )
        }


def test_schedules_and_concurrency_are_what_operators_expect(settings: Settings) -> None:
    berlin = settings.model_copy(update={"timezone": "Europe/Berlin"})

    deployments = read_back(berlin)

    nightly = deployments["nightly-backup/nightly-backup"].schedules[0].schedule
    weekly = deployments["weekly-maintenance/weekly-maintenance"].schedules[0].schedule
    assert (nightly.cron, nightly.timezone) == ("0 2 * * *", "Europe/Berlin")
    assert (weekly.cron, weekly.timezone) == ("0 3 * * 0", "Europe/Berlin")
    for on_demand in (
        "restore/restore",
        "restore-tables/restore-tables",
        "restore-rehearsal/restore-rehearsal",
        "migration-plan/migration-plan",
        "index-review/index-review",
        "migrate-and-seed/migrate-and-seed",
    ):
        assert deployments[on_demand].schedules == []
    for one_at_a_time in ("restore/restore", "restore-tables/restore-tables"):
        restore = deployments[one_at_a_time]
        assert restore.global_concurrency_limit.limit == 1
        assert restore.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    migrate = deployments["migrate-and-seed/migrate-and-seed"]
    assert migrate.global_concurrency_limit.limit == 1
    assert migrate.concurrency_options.collision_strategy.value == "ENQUEUE"


def test_the_restore_form_has_a_mode_dropdown_and_described_fields(settings: Settings) -> None:
    schema = read_back(settings)["restore/restore"].parameter_openapi_schema
    fields = schema["properties"]

    assert fields["mode"]["enum"] == ["swap", "in-place"]
    assert fields["mode"]["default"] == "swap"
    assert fields["backup_id"]["default"] == "latest"
    assert schema["required"] == ["target"]
    for name in ("target", "confirm", "backup_id", "mode", "reseed"):
        assert fields[name]["description"], name


def test_the_restore_tables_form_asks_for_tables_and_a_schema_and_approval_by_default(
    settings: Settings,
) -> None:
    schema = read_back(settings)["restore-tables/restore-tables"].parameter_openapi_schema
    fields = schema["properties"]

    assert sorted(schema["required"]) == ["into_schema", "tables"]
    assert fields["tables"]["type"] == "array"
    assert fields["tables"]["items"]["type"] == "string"
    assert fields["backup_id"]["default"] == "latest"
    assert fields["approval"]["default"] is True
    assert (fields["merge"]["default"], fields["replace"]["default"]) == (False, False)
    for name in ("tables", "into_schema", "backup_id", "where", "merge", "replace", "approval"):
        assert fields[name]["description"], name


def test_the_nightly_chain_backs_up_and_rehearses_that_backup(
    seeded_url: URL, settings: Settings, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = settings.model_copy(update={"backup_url": str(tmp_path / "backups")})
    point_flows_at(monkeypatch, seeded_url, local)

    state = nightly_backup_flow(return_state=True)

    assert state.is_completed(), state.message
    record = state.result()
    assert isinstance(record, RehearsalRecord)
    assert record.passed
    assert [path.name for path in (tmp_path / "backups" / "backups").iterdir()] == [record.backup_id]


def test_the_weekly_chain_runs_every_step_and_fails_if_one_did(
    seeded_url: URL, settings: Settings, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_flows_at(
        monkeypatch, seeded_url, settings.model_copy(update={"backup_url": str(tmp_path / "store")})
    )
    with connect(seeded_url) as connection:
        connection.execute("ALTER TABLE users ALTER COLUMN status SET DEFAULT 'ACTIVE'")

    state = weekly_maintenance_flow(return_state=True)

    assert state.is_failed()
    assert "1 of 4 weekly maintenance step(s) failed" in str(state.message)
    assert "validate-integrity" in str(state.message)
    assert list((tmp_path / "store" / "archive").glob("*/*/runs/*.json"))  # archiving ran before it


def test_prefect_deploy_registers_the_yaml_deployments_on_the_work_pool() -> None:
    with get_client(sync_client=True) as client, suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name="dbops", type="process"))
    environment = environment_without_dbops()
    environment |= {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "DBOPS_TIMEZONE": "Asia/Tokyo"}

    deployed = subprocess.run(
        [
            str(Path(sys.executable).with_name("prefect")),
            "--no-prompt",
            "deploy",
            "--all",
            "--prefect-file",
            "deployments/prefect.yaml",
        ],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("nightly-backup/nightly-backup")
        restore = client.read_deployment_by_name("restore/restore")
    assert nightly.work_pool_name == "dbops"
    assert nightly.entrypoint == "flows/scheduled.py:nightly_backup_flow"
    schedule = nightly.schedules[0].schedule
    assert (getattr(schedule, "cron", None), getattr(schedule, "timezone", None)) == (
        "0 2 * * *",
        "Asia/Tokyo",
    )
    assert (restore.parameter_openapi_schema or {})["properties"]["mode"]["enum"] == ["swap", "in-place"]
    assert nightly.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/dbops"}}
    ]
