"""Failure alerts against a real Prefect API: installed idempotently, and one webhook call per
failed nightly run, received by a local HTTP server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast
from uuid import UUID

import pytest
from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.events.schemas.automations import EventTrigger
from prefect.events.schemas.events import ResourceSpecification
from pydantic import SecretStr
from sqlalchemy.engine import URL

from deployments.alerts import AUTOMATIONS, FAILED, OPERATOR_FAILED, PAUSED, SILENT, WAITING, install_alerts
from deployments.definitions import runner_deployments
from flows.restore import restore_flow
from flows.scheduled import nightly_backup_flow
from models.errors import ConfigurationError
from models.settings import Settings
from tests.helpers import wait_for
from tests.integration.conftest import point_flows_at

# Prefect automations and a webhook: the same whatever major the failing flow reached, so make test's
# second pass leaves them out.
pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.any_major]


def read(name: str) -> Automation:
    return cast(Automation, Automation.read(name=name))  # sync here; typed for async callers too


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def alerting(settings: Settings, receiver: tuple[str, list[dict[str, object]]]) -> Iterator[Settings]:
    url, _ = receiver
    configured = settings.model_copy(
        update={"alert_webhook_url": SecretStr(url), "alert_webhook_allow_private": True}
    )
    yield configured
    for name in AUTOMATIONS:
        with suppress(ValueError):
            read(name).delete()


def only_call(received: list[dict[str, object]]) -> None:
    """Wait for the webhook's first call, then long enough to see that no second one follows."""
    wait_for(lambda: bool(received), "the webhook was never called")
    time.sleep(5)
    assert len(received) == 1, received


def test_installing_twice_creates_once_and_then_changes_nothing(alerting: Settings) -> None:
    first = install_alerts(alerting)
    ids = {name: read(name).id for name in AUTOMATIONS}

    second = install_alerts(alerting)

    assert first == dict.fromkeys(AUTOMATIONS, "created")
    assert second == dict.fromkeys(AUTOMATIONS, "unchanged")
    assert {name: read(name).id for name in AUTOMATIONS} == ids
    trigger = read(SILENT).trigger
    assert isinstance(trigger, EventTrigger)
    assert trigger.posture.value == "Proactive"
    assert trigger.within == timedelta(hours=26)
    waiting = read(WAITING).trigger
    assert isinstance(waiting, EventTrigger)
    assert waiting.after == {"prefect.flow-run.Paused"}
    assert "prefect.flow-run.Running" in waiting.expect
    assert waiting.within == timedelta(minutes=15)
    operator = read(OPERATOR_FAILED).trigger
    assert isinstance(operator, EventTrigger)
    assert isinstance(operator.match_related, ResourceSpecification)
    assert operator.match_related.model_dump() == {
        "prefect.resource.role": "flow",
        "prefect.resource.name": ["restore", "restore-rollback", "restore-tables", "migrate-and-seed"],
    }
    paused = read(PAUSED).trigger
    assert isinstance(paused, EventTrigger)
    assert paused.expect == {"prefect.deployment.updated"}
    assert isinstance(paused.match, ResourceSpecification)
    assert "nightly-backup" in paused.match.model_dump()["prefect.resource.name"]


def test_an_automation_edited_in_the_ui_is_brought_back(alerting: Settings) -> None:
    install_alerts(alerting)
    edited = read(FAILED)
    edited.description = "changed by hand"
    edited.enabled = False
    edited.update()

    again = install_alerts(alerting)

    assert again == dict.fromkeys(AUTOMATIONS, "unchanged") | {FAILED: "updated"}
    restored = read(FAILED)
    assert restored.enabled is True
    assert restored.description.startswith("A scheduled dbops chain failed")


def test_without_a_webhook_there_is_nothing_to_install(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="DBOPS_ALERT_WEBHOOK_URL is not set"):
        install_alerts(settings)


def test_a_failed_nightly_run_sends_exactly_one_webhook_call(
    migrated_url: URL,
    alerting: Settings,
    receiver: tuple[str, list[dict[str, object]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, received = receiver
    install_alerts(alerting)
    # A bucket with no prefix is refused before anything is written: the backup, so the chain, fails.
    point_flows_at(monkeypatch, migrated_url, alerting.model_copy(update={"backup_url": "s3://no-prefix"}))

    state = nightly_backup_flow(return_state=True)

    assert state.is_failed()
    only_call(received)
    text = str(received[0]["text"])
    assert text.startswith("nightly-backup: run ")
    assert "Failed" in text


def test_a_failed_restore_sends_one_call_from_the_operator_automation(
    migrated_url: URL,
    alerting: Settings,
    receiver: tuple[str, list[dict[str, object]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, received = receiver
    install_alerts(alerting)
    point_flows_at(monkeypatch, migrated_url, alerting)

    # A confirmation that does not match refuses the restore, so the run fails with the target untouched.
    state = restore_flow(target=str(migrated_url.database), confirm="another", return_state=True)

    assert state.is_failed()
    only_call(received)
    assert str(received[0]["text"]).startswith("restore: run ")


def test_pausing_a_served_deployment_sends_one_call_that_says_paused(
    alerting: Settings, receiver: tuple[str, list[dict[str, object]]]
) -> None:
    _, received = receiver
    nightly = runner_deployments(alerting)[0]
    deployment_id = cast(UUID, nightly.apply())  # registered as dbops serve registers it; sync here
    install_alerts(alerting)

    with get_client(sync_client=True) as client:
        client.pause_deployment(deployment_id)  # what Prefect's runner did on its way out
        try:
            only_call(received)
        finally:
            client.resume_deployment(deployment_id)

    text = str(received[0]["text"])
    assert text.startswith("dbops: deployment nightly-backup is PAUSED"), text
    assert "dbops serve --check" in text
