"""``dbops serve --check``: are this project's deployments served, paused, and when did each last run?

Read from the Prefect API, so it answers for whichever process serves them (``dbops serve`` here, or
workers of a pool). A health probe can run it: it exits 1 when a deployment is paused, missing or no
longer polled, and 2 when the API does not answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient


@dataclass(frozen=True)
class DeploymentState:
    """What the API says about one deployment; ``registered`` False when it has none of that name."""

    name: str
    registered: bool
    paused: bool = False
    ready: bool = False
    last_run_start: datetime | None = None
    last_run_state: str | None = None


def needs_attention(state: DeploymentState) -> bool:
    return not state.registered or state.paused or not state.ready


def report_line(state: DeploymentState, width: int) -> str:
    if not state.registered:
        return f"{state.name:<{width}}  not registered (start dbops serve, or deploy it to a work pool)"
    schedule = "PAUSED" if state.paused else "active"
    polled = "served" if state.ready else "NOT SERVED (nothing has polled it for a minute)"
    if state.last_run_start is None:
        last = "never ran"
    else:
        started = state.last_run_start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        last = f"last ran {started} ({state.last_run_state})"
    return f"{state.name:<{width}}  {schedule:<6}  {polled}  {last}"


def report(states: list[DeploymentState]) -> list[str]:
    width = max((len(state.name) for state in states), default=0)
    return [report_line(state, width) for state in states]


async def read_states(names: list[str]) -> list[DeploymentState]:
    """Each deployment (``flow/deployment``) in *names*, as the API sees it now."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return [await _read_state(client, name) for name in names]


async def _read_state(client: PrefectClient, name: str) -> DeploymentState:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterStartTime,
    )
    from prefect.client.schemas.objects import DeploymentStatus
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.exceptions import ObjectNotFound

    try:
        deployment = await client.read_deployment_by_name(name)
    except ObjectNotFound:
        return DeploymentState(name=name, registered=False)
    runs = await client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
        flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(is_null_=False)),
        sort=FlowRunSort.START_TIME_DESC,
        limit=1,
    )
    last = runs[0] if runs else None
    return DeploymentState(
        name=name,
        registered=True,
        paused=bool(deployment.paused),
        ready=deployment.status == DeploymentStatus.READY,
        last_run_start=last.start_time if last else None,
        last_run_state=last.state.name if last and last.state else None,
    )
