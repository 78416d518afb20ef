"""Installed automations are compared with the wanted ones field by field; a set of events must
compare equal whatever order it was built or read back in, or every install reports a change."""

from __future__ import annotations

from datetime import timedelta

from prefect.automations import Automation
from prefect.events.schemas.automations import EventTrigger, Posture

from deployments.alerts import _definition

EVENTS = [f"prefect.flow-run.State{number}" for number in range(40)]


def automation(expect: list[str]) -> Automation:
    return Automation(
        name="watch",
        trigger=EventTrigger(expect=set(expect), posture=Posture.Reactive, threshold=1, within=timedelta(0)),
        actions=[],
    )


def test_the_same_events_in_another_order_are_the_same_definition() -> None:
    assert _definition(automation(EVENTS)) == _definition(automation(EVENTS[::-1]))


def test_another_set_of_events_is_another_definition() -> None:
    assert _definition(automation(EVENTS)) != _definition(automation(EVENTS[1:]))
