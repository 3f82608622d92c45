"""The scheduler's run deadlines: one timer for every run instead of an `asyncio.timeout` each."""

import asyncio

import pytest

from checks.base import Check, CheckConfig, CheckContext, Finding, Status
from monitor.clock import SystemClock
from monitor.deadlines import Deadlines
from monitor.metrics import MonitorMetrics
from monitor.runner import run_check


class Sleeper(Check[CheckConfig]):
    """OK after `seconds` of real time; `swallow`: ignores a cancellation and answers anyway."""

    type_name = "sleeper"
    Config = CheckConfig

    def __init__(self, context: CheckContext, seconds: float, swallow: bool = False) -> None:
        super().__init__("sleeper", CheckConfig(type="sleeper"), context)
        self.seconds = seconds
        self.swallow = swallow

    async def run(self) -> list[Finding]:
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            if not self.swallow:
                raise
        return [Finding("down", Status.OK, "fine")]


@pytest.fixture
def context(http_session) -> CheckContext:
    return CheckContext(http_session, SystemClock(), MonitorMetrics())


async def test_a_run_past_its_deadline_is_a_timeout_and_leaves_its_task_uncancelled(context) -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    result = await run_check(Sleeper(context, 3600), timeout=0.1, deadlines=deadlines)
    (finding,) = result.findings
    assert finding.status is Status.CRITICAL
    assert finding.summary == "sleeper: no result within 100ms (timeout)"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0, "the deadline's cancellation is taken back"
    # The same task runs the check again (the scheduler's loop does): within its deadline it answers.
    again = await run_check(Sleeper(context, 0.0), timeout=0.1, deadlines=deadlines)
    assert again.status is Status.OK


async def test_a_run_within_its_deadline_is_never_cancelled(context) -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    results = await asyncio.gather(*(run_check(Sleeper(context, 0.01), 5.0, deadlines) for _ in range(100)))
    assert {result.status for result in results} == {Status.OK}
    await asyncio.sleep(0.2)  # sweeps come and go: nothing is watched any more
    results = await asyncio.gather(*(run_check(Sleeper(context, 0.0), 5.0, deadlines) for _ in range(10)))
    assert {result.status for result in results} == {Status.OK}


async def test_a_stop_during_a_watched_run_is_a_cancellation_not_a_timeout(context) -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    run = asyncio.create_task(run_check(Sleeper(context, 3600), timeout=3600, deadlines=deadlines))
    await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


async def test_a_check_that_swallows_the_cancellation_keeps_its_findings(context) -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    result = await run_check(Sleeper(context, 3600, swallow=True), timeout=0.1, deadlines=deadlines)
    assert result.status is Status.OK
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
