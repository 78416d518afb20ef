"""Database URLs given as flow parameters: never with a password.

The Prefect server stores a flow run's parameters as they were typed, and returns them to anyone with
read access to its API (``read_flow_runs``): a pydantic ``SecretStr`` annotation hides a value only
from the process that holds it, never from that store. So a URL parameter carries no password. Each
deployment's parameter schema says so (``pattern``), which the Prefect UI and the server's
parameter-schema enforcement apply before a run is created; a run that gets one anyway (a direct call,
a deployment without enforcement) is refused as it starts, and the value stored with it is replaced by
its masked form. The password comes from the worker: ``DBOPS_DATABASE_URL`` (leave the parameter
empty), ``PGPASSWORD`` or a pgpass file; or the parameter names a Prefect ``Secret`` block holding the
whole URL (``secret:BLOCK``), read by the run as it starts and never stored with it.
"""

from __future__ import annotations

import logging
from typing import Annotated, cast

from pydantic import Field
from sqlalchemy.engine import URL

from models.database_url import carries_password, masked, split_database_url
from models.errors import ConfigurationError
from models.settings import Settings
from tasks.postgres.engine import resolve_database_url

_log = logging.getLogger(__name__)

#: No ``user:password@`` and no ``password=`` query parameter (JSON Schema patterns are ECMA-262,
#: which has lookahead; pydantic does not evaluate this one, the check below does).
PARAMETER_URL_PATTERN = r"^(?![^:/?#]*://[^/?#@]*:[^/?#@]*@)(?!.*[?&]password=)"

DatabaseURLParameter = Annotated[
    str | None,
    Field(
        json_schema_extra={"pattern": PARAMETER_URL_PATTERN},
        description="postgresql://USER@HOST:PORT/DATABASE without a password, or secret:BLOCK naming a "
        "Prefect Secret block that holds the URL; empty: DBOPS_DATABASE_URL.",
    ),
]

REFUSED_URL_HINT = (
    "leave the password out: give the worker DBOPS_DATABASE_URL (and leave this parameter empty), "
    "PGPASSWORD or a pgpass file (PGPASSFILE); or keep the whole URL in a Prefect Secret block and pass "
    "secret:BLOCK_NAME"
)
#: A parameter of this form names a Prefect Secret block holding the URL instead of being one.
BLOCK_REFERENCE_PREFIX = "secret:"


def database_url_parameter(settings: Settings, name: str, raw: str | None) -> URL:
    """The URL the flow parameter *name* (*raw*) names, else the configured one; refused, and
    scrubbed from the run's stored parameters, when it is not a password-free PostgreSQL URL."""
    if raw is None or not raw.strip():
        return resolve_database_url(settings, None)
    if raw.strip().startswith(BLOCK_REFERENCE_PREFIX):
        return _url_from_secret_block(name, raw.strip().removeprefix(BLOCK_REFERENCE_PREFIX).strip())
    try:
        parsed = split_database_url(raw, setting=f"the flow parameter {name}")
    except ValueError as error:
        _scrub_stored_parameter(name, "(refused: not a PostgreSQL URL)")
        raise ConfigurationError(str(error), hint="pass a postgresql:// URL, or none") from None
    if carries_password(parsed):
        _scrub_stored_parameter(name, masked(parsed))
        raise ConfigurationError(
            f"the flow parameter {name} must not contain a password: the Prefect server stores flow "
            "parameters as typed, readable by anyone with API access",
            hint=REFUSED_URL_HINT,
        )
    return parsed.to_url()


def _url_from_secret_block(parameter: str, block: str) -> URL:
    """The URL kept in the Prefect Secret block *block*: the run reads it, nothing stores it."""
    from prefect.blocks.system import Secret
    from prefect.exceptions import ObjectNotFound

    hint = (
        f"create the Secret block '{block}' holding the postgresql:// URL (Prefect UI: Blocks, or "
        f"Secret(value=URL).save('{block}')), or pass a URL without a password"
    )
    try:
        # Synchronous in a sync flow; typed for async callers too.
        value = cast("Secret[str]", Secret.load(block)).get()
    except (ValueError, ObjectNotFound):
        raise ConfigurationError(
            f"the flow parameter {parameter} names the Secret block '{block}', which does not exist",
            hint=hint,
        ) from None
    if not isinstance(value, str):
        raise ConfigurationError(
            f"the Secret block '{block}' of the flow parameter {parameter} holds no URL", hint=hint
        )
    try:
        return split_database_url(value, setting=f"the Secret block '{block}'").to_url()
    except ValueError as error:
        raise ConfigurationError(str(error), hint=hint) from None


def _scrub_stored_parameter(name: str, replacement: str) -> None:
    """Overwrite what the Prefect server stored for *name* on this flow run. Best effort: the run is
    refused either way, and outside a flow run there is nothing stored."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    try:
        with get_client(sync_client=True) as client:
            stored = client.read_flow_run(context.flow_run.id)
            client.update_flow_run(context.flow_run.id, parameters={**stored.parameters, name: replacement})
    except Exception as error:
        _log.warning("could not replace the refused parameter %s stored with this run: %s", name, error)
