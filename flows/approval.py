"""An operator's approval in the Prefect UI, before a restore touches a live database.

The flow pauses in place (``pause_flow_run``): the process and the copy it built stay, and the run's
page shows a markdown summary above a form with one choice, approve or reject. The choice defaults
to reject, so resuming without reading changes nothing. No answer within
``DBOPS_RESTORE_APPROVAL_TIMEOUT_SECONDS`` counts as a rejection.

The caller releases the maintenance slot before asking and takes it again after an approval: a
restore waiting for a person must not stop the nightly backup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Cancelled, Failed
from pydantic import Field


class Approval(RunInput):
    """The form under the summary on a paused restore's page."""

    decision: Literal["reject", "approve"] = Field(
        default="reject",
        description="approve: replace the live database with the copy summarised above. "
        "reject: drop the copy; the live database stays as it is.",
    )
    note: str = Field(default="", description="Why, for the run's log and the event feed (optional).")


@dataclass(frozen=True)
class Decision:
    approved: bool
    #: What happened, as the run's final message says it: approved, rejected, or no answer.
    answer: str
    note: str = ""
    timed_out: bool = False


def unapproved(decision: Decision, message: str) -> State:
    """The final state of a run whose restore was not approved, saying which way it ended.

    A "no" is a choice: the run is Cancelled. No answer fails it, so that the failed-run alert reaches
    someone. Prefect's server fails a pause that expires on its own, with a message of its own that
    says nothing of the copy; the run's state is set again, with *message*, so the run page says it.
    """
    if not decision.timed_out:
        return Cancelled(message=message)
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(context.flow_run.id, Failed(message=message), force=True)
    return Failed(message=message)  # a state of its own: one the client has set is not "returned"


def ask_operator(summary: str, timeout_seconds: int) -> Decision:
    """Pause this flow run until an operator approves or rejects what *summary* (markdown) describes."""
    logger = get_run_logger()
    logger.info(
        "waiting up to %d s for an operator to approve or reject, on this run's page", timeout_seconds
    )
    try:
        answer = pause_flow_run(
            wait_for_input=Approval.with_initial_data(description=summary),
            timeout=timeout_seconds,
            poll_interval=2,
        )
    except FlowPauseTimeout:
        return Decision(False, f"no operator answered within {timeout_seconds} s", timed_out=True)
    approved = answer.decision == "approve"
    verdict = "approved by the operator" if approved else "rejected by the operator"
    return Decision(approved, verdict + (f" ({answer.note})" if answer.note else ""), answer.note)
