"""The ``migrate`` flow on a real Prefect API: result, artifact, failure state, and no leaked password."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from sqlalchemy.engine import URL

from flows.migrate import migrate_flow
from models.results import MigrationDirection, MigrationResult
from tasks.schema.migrate import head_revision
from tests.integration.conftest import flow_url

pytestmark = pytest.mark.usefixtures("prefect_api")


async def _flow_run_record(flow_run_id: UUID | None) -> tuple[dict[str, Any], list[str], list[Any]]:
    assert flow_run_id is not None
    async with get_client() as client:
        flow_run = await client.read_flow_run(flow_run_id)
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["migration"]))
        )
    tables = [artifact.data for artifact in artifacts if artifact.flow_run_id == flow_run_id]
    return flow_run.parameters, [log.message for log in logs], tables


def test_migrate_flow_completes_with_result_and_artifact(
    database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = migrate_flow(database_url_override=flow_url(database_url, monkeypatch), return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, MigrationResult)
    assert result.direction is MigrationDirection.UPGRADE
    assert result.revision_after == head_revision()

    APILogHandler().flush()
    parameters, messages, artifacts = asyncio.run(_flow_run_record(state.state_details.flow_run_id))
    assert len(artifacts) == 1
    assert f'"to": "{head_revision()}"' in str(artifacts[0]).replace("'", '"')
    assert any("applied upgrade" in message for message in messages), messages
    password = str(database_url.password)
    assert password not in str(parameters)
    assert all(password not in message for message in messages)


def test_migrate_flow_fails_with_the_operator_message(
    database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = migrate_flow(
        target="nope", database_url_override=flow_url(database_url, monkeypatch), return_state=True
    )

    assert state.is_failed()
    assert "no migration revision named 'nope'" in str(state.message)
    assert "Hint:" in str(state.message)
