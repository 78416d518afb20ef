"""Database URLs given as flow parameters carry no password, on a real Prefect API: the Prefect server
stores parameters as typed and shows them to anyone who can read its API."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.exceptions import PrefectHTTPStatusError
from sqlalchemy.engine import URL

from flows.validate_integrity import validate_integrity_flow
from tests.integration.conftest import flow_url, url_string

pytestmark = pytest.mark.usefixtures("prefect_api")


def everything_stored_about(flow_run_id: UUID | None) -> str:
    """The run's parameters, state and every log line, as the API returns them to any reader."""
    assert flow_run_id is not None

    async def read() -> str:
        async with get_client() as client:
            run = await client.read_flow_run(flow_run_id)
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
            states = await client.read_flow_run_states(flow_run_id)
        return "\n".join(
            [
                run.model_dump_json(),
                *(state.model_dump_json() for state in states),
                *(log.message for log in logs),
            ]
        )

    return asyncio.run(read())


@pytest.mark.parametrize("where", ["user info", "query"])
def test_a_url_with_a_password_is_refused_and_the_password_is_stored_nowhere(
    where: str, seeded_url: URL
) -> None:
    password = str(seeded_url.password)
    with_password = (
        url_string(seeded_url)
        if where == "user info"
        else seeded_url.render_as_string(hide_password=True).replace(":***@", "@") + f"?password={password}"
    )

    state = validate_integrity_flow(database_url=with_password, return_state=True)

    assert state.is_failed()
    message = str(state.message)
    assert "the flow parameter database_url must not contain a password" in message
    assert "PGPASSWORD or a pgpass file" in message
    assert len(message.strip().splitlines()) == 1, message
    stored = everything_stored_about(state.state_details.flow_run_id)
    assert "must not contain a password" in stored  # what was read is the run's record
    assert password not in stored


def test_a_url_without_a_password_works(seeded_url: URL, monkeypatch: pytest.MonkeyPatch) -> None:
    state = validate_integrity_flow(database_url=flow_url(seeded_url, monkeypatch), return_state=True)

    assert state.is_completed(), state.message
    assert str(seeded_url.password) not in everything_stored_about(state.state_details.flow_run_id)


def test_a_deployment_run_with_a_password_is_refused_before_anything_is_stored(seeded_url: URL) -> None:
    password = str(seeded_url.password)
    deployment_id = validate_integrity_flow.to_deployment("parameters-without-passwords").apply()  # type: ignore[union-attr]
    assert isinstance(deployment_id, UUID)

    async def submit_and_list() -> tuple[BaseException | None, list[Any]]:
        async with get_client() as client:
            refused: BaseException | None = None
            try:
                await client.create_flow_run_from_deployment(
                    deployment_id, parameters={"database_url": url_string(seeded_url)}
                )
            except PrefectHTTPStatusError as error:
                refused = error
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
        return refused, runs

    refused, runs = asyncio.run(submit_and_list())

    assert refused is not None, "the server took a URL with a password"
    assert "database_url" in str(refused)
    assert runs == []
    assert all(password not in run.model_dump_json() for run in runs)


def test_a_secret_block_holds_a_url_with_its_password_and_the_run_stores_none(seeded_url: URL) -> None:
    from prefect.blocks.system import Secret

    password = str(seeded_url.password)
    block = f"dbops-url-{uuid4().hex[:8]}"
    Secret(value=url_string(seeded_url)).save(block)

    state = validate_integrity_flow(database_url=f"secret:{block}", return_state=True)

    assert state.is_completed(), state.message
    stored = everything_stored_about(state.state_details.flow_run_id)
    assert f"secret:{block}" in stored
    assert password not in stored


def test_a_missing_secret_block_is_one_line() -> None:
    state = validate_integrity_flow(database_url="secret:no-such-block", return_state=True)

    assert state.is_failed()
    message = str(state.message)
    assert "names the Secret block 'no-such-block', which does not exist" in message
    assert len(message.strip().splitlines()) == 1, message
