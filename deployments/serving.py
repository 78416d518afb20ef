"""``dbops serve``'s loop: Prefect's runner, started again for as long as the API takes to come back.

Prefect's runner polls the API for scheduled runs. After three failed polls in a row (each already
retried by the client, for about a minute with the default settings) it raises "Service exceeded
error threshold" and ends; ``prefect.serve`` then pauses every deployment on its way out, and the
schedules stay stopped after the API is back. Prefect has no setting for that threshold
(``critical_service_loop`` is called with its fixed defaults), so instead of widening it:

- the runner is built with ``pause_on_shutdown=False``, an argument of ``Runner`` itself, so neither
  its end nor ours ever pauses a deployment;
- when the runner ends, this loop waits for the API with a capped exponential back-off, one log line
  per step, and then starts a new runner, which registers the deployments again and polls for runs.

A run the old runner had started is stopped by that runner as it ends (it kills its children), and
Prefect marks it crashed once it stops reporting; the next scheduled run starts as usual.

Registering a deployment sets its ``paused`` flag. The first registration resumes every deployment,
as starting ``dbops serve`` always has. A registration after an outage keeps the flag the server has,
so a deployment an operator paused on purpose stays paused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment
    from prefect.runner import Runner

logger = logging.getLogger("dbops.serve")

#: The longest wait between two checks of the API: how late a run can start after an outage ends.
LONGEST_WAIT_SECONDS = 30.0
#: How often a long outage is logged once the back-off has reached its longest wait.
OUTAGE_REMINDER_SECONDS = 600.0
#: A health check that takes longer than this counts as a failure (a black-holed address never answers).
HEALTH_CHECK_SECONDS = 10.0
#: How long a stop may take inside the loop; the process adds its own deadline on top (``service``).
STOP_SECONDS = 6.0


def backoff_delays(first: float = 1.0, longest: float = LONGEST_WAIT_SECONDS) -> Iterator[float]:
    """1, 2, 4, ... seconds, then *longest* for ever."""
    delay = first
    while True:
        yield min(delay, longest)
        delay *= 2


def worth_logging(attempt: int, delay: float, previous: float | None) -> bool:
    """Log a failed check once per back-off step, then once every ``OUTAGE_REMINDER_SECONDS`` at the
    longest step, so a night-long outage leaves a few dozen lines, not thousands."""
    if previous is None or delay != previous:
        return True
    reminders = max(1, round(OUTAGE_REMINDER_SECONDS / delay))
    return attempt % reminders == 0


def first_cause(error: BaseException) -> str:
    """One line for what ended a runner: the first leaf of an exception group (anyio wraps each
    task group's failure in one), as ``Type: message``."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


async def supervise(deployments: Sequence[RunnerDeployment], stop: asyncio.Event) -> None:
    """Serve *deployments* until *stop* is set, whatever happens to the API in between."""
    registered_before = False
    while not stop.is_set():
        if not await wait_for_api(stop):
            return
        try:
            if registered_before:
                await keep_paused_flags(deployments)
            runner = await _registered_runner(deployments)
            registered_before = True
            await _serve_until_stopped(runner, stop)
        except Exception as error:  # whatever ended it, the API comes back and a new runner starts
            logger.warning(
                "Prefect's runner ended (%s); no deployment was paused; serving again once the API answers",
                first_cause(error),
            )
            continue
        if not stop.is_set():
            logger.warning("Prefect's runner stopped on its own; starting a new one")


async def wait_for_api(stop: asyncio.Event) -> bool:
    """Wait until the API answers its health check; False if *stop* came first."""
    previous: float | None = None
    for failures, delay in enumerate(backoff_delays()):
        error = await api_error()
        if error is None:
            if failures:
                logger.info("The Prefect API answers again after %d failed checks", failures)
            return True
        if worth_logging(failures + 1, delay, previous):
            logger.warning("The Prefect API does not answer (%s); next check in %g s", error, delay)
        previous = delay
        with anyio.move_on_after(delay):
            await stop.wait()
        if stop.is_set():
            return False
    return False  # backoff_delays never ends; this line only satisfies the type checker


async def api_error() -> str | None:
    """None when the API answers its health check, otherwise one line saying why not."""
    from prefect.client.orchestration import get_client

    try:
        with anyio.fail_after(HEALTH_CHECK_SECONDS):
            async with get_client() as client:
                failure = await client.api_healthcheck()
    except TimeoutError:
        return f"no answer within {HEALTH_CHECK_SECONDS:g} s"
    except Exception as error:
        return first_cause(error)
    return None if failure is None else first_cause(failure)


async def keep_paused_flags(deployments: Sequence[RunnerDeployment]) -> None:
    """Carry each deployment's paused flag from the server into its next registration."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        for deployment in deployments:
            try:
                current = await client.read_deployment_by_name(deployment.full_name)
            except ObjectNotFound:  # a server that lost its database: registered afresh, active
                deployment.paused = False
                continue
            deployment.paused = bool(current.paused)


async def _registered_runner(deployments: Sequence[RunnerDeployment]) -> Runner:
    from prefect.runner import Runner

    runner = Runner(pause_on_shutdown=False, limit=None)
    for deployment in deployments:
        await runner.aadd_deployment(deployment)
    logger.info("Serving %d deployments: %s", len(deployments), ", ".join(d.full_name for d in deployments))
    return runner


async def _serve_until_stopped(runner: Runner, stop: asyncio.Event) -> None:
    """Run *runner* until it ends (its error propagates) or *stop* is set.

    On stop, ``Runner.astop`` cancels the runs in flight through the API and ends the polling; the
    runner then closes its clients. With the API down either step can wait on the client's retries,
    so both get ``STOP_SECONDS`` together, after which the runner is cancelled where it stands.
    """

    async with anyio.create_task_group() as group:

        async def stop_when_asked() -> None:
            await stop.wait()
            if runner.started:  # otherwise it is still starting, and there is nothing to close yet
                with anyio.move_on_after(STOP_SECONDS):
                    await runner.astop()
                    await anyio.sleep_forever()  # until start() returns, which cancels this
                logger.warning("Prefect's runner did not close down within %g s; cancelling it", STOP_SECONDS)
            group.cancel_scope.cancel()

        group.start_soon(stop_when_asked)
        await runner.start()
        group.cancel_scope.cancel()
