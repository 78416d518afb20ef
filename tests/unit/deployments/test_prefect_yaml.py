"""deployments/prefect.yaml (for ``prefect deploy --all``) describes what ``dbops serve`` serves."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

from deployments.definitions import runner_deployments
from models.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_prefect_yaml_matches_the_deployment_definitions() -> None:
    document = yaml.safe_load((REPO_ROOT / "deployments" / "prefect.yaml").read_text())
    declared = {entry["name"]: entry for entry in document["deployments"]}
    defined = {
        deployment.name: deployment for deployment in runner_deployments(load_settings(_env_file=None))
    }

    assert declared.keys() == defined.keys()
    for name, entry in declared.items():
        deployment = defined[name]
        path, function = entry["entrypoint"].split(":")
        module = path.removesuffix(".py").replace("/", ".")
        assert getattr(importlib.import_module(module), function).name == deployment.flow_name, name
        assert entry["description"] == deployment.description, name
        assert entry["work_pool"]["name"] == "dbops"
        crons = [schedule["cron"] for schedule in entry.get("schedules", [])]
        assert crons == [
            getattr(schedule.schedule, "cron", None) for schedule in deployment.schedules or []
        ], name
        limit = entry.get("concurrency_limit")
        if deployment.concurrency_limit is None:
            assert limit is None, name
        else:
            assert limit["limit"] == deployment.concurrency_limit, name
            assert deployment.concurrency_options is not None
            assert limit["collision_strategy"] == deployment.concurrency_options.collision_strategy.value, (
                name
            )
