"""``dbops db-url`` and ``dbops embedded-stop``: which database dbops works on, and its embedded server.

Apart from the schema commands so that asking for the URL, which scripts do often, needs no Alembic;
a configured URL is printed without SQLAlchemy or psycopg either (see ``models.database_url``).
"""

from __future__ import annotations

import typer

from models.database_url import masked, split_database_url
from models.settings import load_settings


def register(app: typer.Typer) -> None:
    app.command("db-url")(db_url_command)
    app.command("embedded-stop")(embedded_stop_command)


def db_url_command() -> None:
    """Print the database URL dbops uses, password masked (starts the embedded server if needed)."""
    settings = load_settings()
    if settings.database_url is not None:
        typer.echo(masked(split_database_url(settings.database_url.get_secret_value())))
        typer.echo("(from DBOPS_DATABASE_URL)", err=True)
        return
    # Only the embedded server needs the engine's module (SQLAlchemy, psycopg): it may have to start.
    from tasks.postgres.engine import database_url

    typer.echo(masked(database_url(settings)))
    typer.echo(f"(from embedded server in {settings.embedded_server_dir})", err=True)


def embedded_stop_command() -> None:
    """Stop the embedded PostgreSQL server under DBOPS_HOME, if it is running."""
    settings = load_settings()
    # The embedded server's module brings psycopg, which printing the URL never needs.
    from tasks.postgres.binaries import resolve_bindir
    from tasks.postgres.embedded import stop

    stopped = stop(settings.embedded_server_dir, resolve_bindir(settings.pg_bindir))
    typer.echo("embedded server stopped" if stopped else "embedded server was not running")
