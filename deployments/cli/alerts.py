"""``dbops alerts install``: failure alerts for the scheduled chains, as Prefect automations."""

from __future__ import annotations

import typer

from models.settings import load_settings

alerts_app = typer.Typer(help="Failure alerts for the scheduled runs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")


@alerts_app.command("install")
def install_command() -> None:
    """Create or update the automations (idempotent): failed runs, and a missing nightly backup."""
    settings = load_settings()
    from deployments.alerts import install_alerts

    for name, outcome in install_alerts(settings).items():
        typer.echo(f"{outcome:<9} {name}")
