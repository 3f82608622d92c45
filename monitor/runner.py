"""The safety wrapper around one check run, owned by the core as Datadog's AgentCheck.run()
is: a timeout on every run, and any exception turned into an `unknown` finding."""

import asyncio
from dataclasses import dataclass, field

import structlog

from checks.base import Check
from monitor.deadlines import Deadlines
from monitor.model import CHECK_ERROR_CODE, Finding, Status, worst_status

log = structlog.get_logger("monitor.runner")


@dataclass(frozen=True, slots=True)
class RunResult:
    check: str
    findings: list[Finding]
    duration: float
    status: Status = field(init=False)
    """The worst finding's, worked out once: every consumer of a run reads it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", worst_status(self.findings))


async def run_check(check: Check, timeout: float, deadlines: Deadlines | None = None) -> RunResult:
    """One run of `check`, cut at `timeout` by `deadlines` (the scheduler's, one timer for all its
    runs) or else by its own `asyncio.timeout`."""
    clock = check.context.clock
    started = clock.monotonic()
    try:
        if deadlines is None:
            async with asyncio.timeout(timeout):
                findings = await check.run()
        else:
            findings = await _run_by(deadlines, check, timeout)
        if not findings:
            raise ValueError("the check returned no finding")
    except TimeoutError:
        findings = [check.timeout_finding(timeout)]
    except Exception as exc:  # noqa: BLE001 - a check's bug must never reach the scheduler
        log.warning("check.error", check=check.name, error=f"{type(exc).__name__}: {exc}")
        findings = [
            Finding(
                code=CHECK_ERROR_CODE,
                status=Status.UNKNOWN,
                summary=f"{check.name} could not run: {type(exc).__name__}: {exc}",
                blocks=("*",),
            )
        ]
    return RunResult(check=check.name, findings=findings, duration=clock.monotonic() - started)


async def _run_by(deadlines: Deadlines, check: Check, timeout: float) -> list[Finding]:
    task = asyncio.current_task()
    assert task is not None
    deadlines.watch(task, timeout)
    try:
        findings = await check.run()
    except asyncio.CancelledError:
        # Cancelled for its deadline and by nothing else (a stop): a timeout, as asyncio.timeout says.
        if deadlines.forget(task) and task.uncancel() == 0:
            raise TimeoutError from None
        raise
    except BaseException:
        if deadlines.forget(task):
            task.uncancel()
        raise
    if deadlines.forget(task):  # the check swallowed the cancellation: its findings stand
        task.uncancel()
    return findings
