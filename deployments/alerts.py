"""Failure alerts as Prefect automations, installed idempotently by ``dbops alerts install``.

- A failed or crashed ``nightly-backup`` or ``weekly-maintenance`` run sends one notification.
- So does a failed or crashed operator run: ``restore``, ``restore-rollback``, ``restore-tables`` and
  ``migrate-and-seed`` (a restore nobody approved in time fails too).
- A restore paused for approval for more than 15 minutes sends one: someone started it and is
  waiting for a second pair of eyes, or forgot it.
- No completed ``nightly-backup`` in 26 hours sends one too: the night the scheduler or the worker
  is down produces no failed run to react to, only silence.
- A change to one of this project's deployments sends one, and says so loudly when the change paused
  it: a paused deployment's schedule creates no runs, so nothing fails either. Prefect 3 emits no
  event of its own for a pause, only ``prefect.deployment.updated`` with the changed fields in its
  payload, and a trigger cannot filter on the payload; the message tells a pause from other changes.

Notifications go through a webhook block with a Slack-compatible payload (``{"text": ...}``), so
Slack, Mattermost, Rocket.Chat or a plain HTTP receiver all take it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture

from deployments.definitions import runner_deployments
from models.errors import ConfigurationError
from models.settings import Settings

WEBHOOK_BLOCK = "dbops-alert-webhook"
WATCHED_FLOWS = ["nightly-backup", "weekly-maintenance"]
OPERATOR_FLOWS = ["restore", "restore-rollback", "restore-tables", "migrate-and-seed"]
APPROVED_FLOWS = ["restore", "restore-tables"]
FAILED = "dbops: nightly or weekly run failed"
OPERATOR_FAILED = "dbops: restore, rollback or deploy run failed"
WAITING = "dbops: restore waiting for approval for 15 minutes"
SILENT = "dbops: no completed nightly backup in 26 hours"
PAUSED = "dbops: a deployment was paused or changed"
AUTOMATIONS = (FAILED, OPERATOR_FAILED, WAITING, SILENT, PAUSED)
MISSING_BACKUP_WINDOW = timedelta(hours=26)
APPROVAL_WINDOW = timedelta(minutes=15)
#: What a paused run turns into once someone answers, or the pause ends otherwise.
_AFTER_PAUSE = {
    "prefect.flow-run.Running",
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Crashed",
}

#: The event's payload says which fields changed, from what to what; a pause is ``paused`` to true.
_DEPLOYMENT_CHANGE_SUBJECT = (
    "dbops: deployment {{ event.resource['prefect.resource.name'] }} "
    "{% if event.payload.updates.paused and event.payload.updates.paused.to %}"
    "is PAUSED: its schedule creates no runs"
    "{% elif event.payload.updates.paused %}was resumed"
    "{% else %}was changed ({{ event.payload.updated_fields|join(', ') }}){% endif %}"
)


def install_alerts(settings: Settings) -> dict[str, str]:
    """Create the automations, or bring them up to date; returns what happened to each."""
    if settings.alert_webhook_url is None:
        raise ConfigurationError(
            "DBOPS_ALERT_WEBHOOK_URL is not set, so there is nowhere to send alerts",
            hint="set it to a Slack-compatible incoming webhook URL and run dbops alerts install again",
        )
    block = CustomWebhookNotificationBlock(
        name="dbops alerts",
        url=settings.alert_webhook_url.get_secret_value(),
        json_data={"text": "{{subject}}\n{{body}}"},
        allow_private_urls=settings.alert_webhook_allow_private,
    )
    block_id = block.save(WEBHOOK_BLOCK, overwrite=True)
    notify = SendNotification(
        block_document_id=block_id,
        subject="{{ flow.name }}: run {{ flow_run.name }} is {{ flow_run.state.name }}",
        body="{{ flow_run.state.message }}\n{{ flow_run|ui_url }}",
    )
    wanted = [
        Automation(
            name=FAILED,
            description="A scheduled dbops chain failed; its run page says which step and why.",
            trigger=EventTrigger(
                expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                match_related={"prefect.resource.role": "flow", "prefect.resource.name": WATCHED_FLOWS},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[notify],
        ),
        Automation(
            name=OPERATOR_FAILED,
            description="An operator's restore, rollback, table restore or deploy failed; its run page "
            "says which step and why, and whether the live database was touched.",
            trigger=EventTrigger(
                expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                match_related={"prefect.resource.role": "flow", "prefect.resource.name": OPERATOR_FLOWS},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[notify],
        ),
        Automation(
            name=WAITING,
            description="A restore has waited 15 minutes for an operator to approve or reject its copy.",
            trigger=EventTrigger(
                after={"prefect.flow-run.Paused"},
                expect=_AFTER_PAUSE,
                for_each={"prefect.resource.id"},
                match_related={"prefect.resource.role": "flow", "prefect.resource.name": APPROVED_FLOWS},
                posture=Posture.Proactive,
                threshold=1,
                within=APPROVAL_WINDOW,
            ),
            actions=[
                SendNotification(
                    block_document_id=block_id,
                    subject="dbops: a restore has waited 15 minutes for approval",
                    body="Open the paused run in the Prefect UI, read its summary, and approve or reject it.",
                )
            ],
        ),
        Automation(
            name=SILENT,
            description="No nightly backup completed: the scheduler, the worker or the run itself is stuck.",
            trigger=EventTrigger(
                expect={"prefect.flow-run.Completed"},
                match_related={"prefect.resource.role": "flow", "prefect.resource.name": "nightly-backup"},
                posture=Posture.Proactive,
                threshold=1,
                within=MISSING_BACKUP_WINDOW,
            ),
            actions=[
                SendNotification(
                    block_document_id=block_id,
                    subject="dbops: no nightly backup completed in the last 26 hours",
                    body="Check the nightly-backup deployment, its work pool and its workers.",
                )
            ],
        ),
        Automation(
            name=PAUSED,
            description="One of the served deployments was paused (its schedule stopped) or changed.",
            trigger=EventTrigger(
                expect={"prefect.deployment.updated"},
                match={"prefect.resource.name": [d.name for d in runner_deployments(settings)]},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[
                SendNotification(
                    block_document_id=block_id,
                    subject=_DEPLOYMENT_CHANGE_SUBJECT,
                    body="dbops serve --check lists each deployment, paused or not, and its last run. "
                    "Resume a paused one in the Prefect UI (Deployments), or restart dbops serve.",
                )
            ],
        ),
    ]
    return {automation.name: _create_or_update(automation) for automation in wanted}


def _create_or_update(wanted: Automation) -> str:
    try:
        existing = cast(Automation, Automation.read(name=wanted.name))  # sync here; typed for async too
    except ValueError:
        wanted.create()
        return "created"
    if _definition(existing) == _definition(wanted):
        return "unchanged"
    for field in ("description", "enabled", "trigger", "actions"):
        setattr(existing, field, getattr(wanted, field))
    existing.update()
    return "updated"


def _definition(automation: Automation) -> dict[str, Any]:
    """The fields we own, in python mode: ``expect`` stays a set, so two equal triggers compare
    equal whatever order the server or this process happened to iterate its events in."""
    return automation.model_dump(include={"description", "enabled", "trigger", "actions"})
