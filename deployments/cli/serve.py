"""``dbops serve``: one process serving every deployment, schedules included, for a single machine.

Prefect is imported only here, so the other commands (the ones deploy pipelines call) start fast.
"""

from __future__ import annotations

import typer

from models.settings import load_settings


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


def serve_command() -> None:
    """Serve the deployments (nightly backup, weekly maintenance, restore, ...) against PREFECT_API_URL."""
    settings = load_settings()
    from prefect import serve

    from deployments.definitions import runner_deployments

    serve(*runner_deployments(settings))
