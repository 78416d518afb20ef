"""``dbops serve``: one long-lived process serving every deployment, schedules included, for a single
machine; ``dbops serve --check``: whether they are served, paused, and when each last ran.

Prefect is imported only here, so the other commands (the ones deploy pipelines call) start fast.
"""

from __future__ import annotations

import asyncio

import typer

from models.settings import Settings, load_settings


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


def serve_command(
    check: bool = typer.Option(
        False,
        "--check",
        help="Do not serve: report whether each deployment is served or paused and when it last ran "
        "(exit 1 if one needs attention, 2 if the Prefect API does not answer).",
    ),
) -> None:
    """Serve the deployments (nightly backup, weekly maintenance, restore, ...) against PREFECT_API_URL.

    Keeps serving through Prefect API outages of any length and never pauses a deployment; stops
    within 10 s of SIGTERM.
    """
    settings = load_settings()
    if check:
        _check(settings)
        return
    from deployments.definitions import runner_deployments
    from deployments.service import end_process, run_until_signalled
    from deployments.serving import supervise

    deployments = runner_deployments(settings)
    end_process(run_until_signalled(lambda stop: supervise(deployments, stop)))


def _check(settings: Settings) -> None:
    import httpx
    from prefect.settings import PREFECT_API_URL

    from deployments.definitions import runner_deployments
    from deployments.serve_check import needs_attention, read_states, report
    from deployments.serving import api_error, first_cause
    from models.errors import PrefectUnavailableError

    names = [deployment.full_name for deployment in runner_deployments(settings)]
    unreachable = asyncio.run(api_error())
    if unreachable is None:
        try:
            states = asyncio.run(read_states(names))
        except httpx.HTTPError as error:  # it went away between the health check and the reads
            unreachable = first_cause(error)
    if unreachable is not None:
        raise PrefectUnavailableError(
            f"the Prefect API at {PREFECT_API_URL.value() or '(ephemeral)'} does not answer",
            detail=unreachable,
            hint="start it, or point PREFECT_API_URL at it; until then nothing can say whether the "
            "deployments are paused",
        )
    for line in report(states):
        typer.echo(line)
    if any(needs_attention(state) for state in states):
        raise typer.Exit(1)
