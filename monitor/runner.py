"""The safety wrapper around one check run, owned by the core as Datadog's AgentCheck.run()
is: a timeout on every run, and any exception turned into an `unknown` finding."""

import asyncio
from dataclasses import dataclass

import structlog

from checks.base import Check
from monitor.model import CHECK_ERROR_CODE, Finding, Status, worst_status

log = structlog.get_logger("monitor.runner")


@dataclass(frozen=True, slots=True)
class RunResult:
    check: str
    findings: list[Finding]
    duration: float

    @property
    def status(self) -> Status:
        return worst_status(self.findings)


async def run_check(check: Check, timeout: float) -> RunResult:
    clock = check.context.clock
    started = clock.monotonic()
    try:
        async with asyncio.timeout(timeout):
            findings = await check.run()
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
