"""The scheduler, driven by a fake clock: no drift, spread starts, no overlap, bounded
concurrency, and a check that hangs or raises never hurts another."""

import asyncio
from typing import Any

import pytest

from checks.base import Check, CheckConfig, CheckContext, Finding, Status
from monitor.clock import SystemClock
from monitor.metrics import MonitorMetrics
from monitor.runner import RunResult, run_check
from monitor.scheduler import Scheduler, next_due, start_offset
from tests.fakes import FakeClock, settle


class ScriptedCheck(Check[CheckConfig]):
    """A check whose run takes `cost` seconds of (fake or real) time, or raises."""

    type_name = "scripted"
    Config = CheckConfig

    def __init__(self, name: str, context: CheckContext, cost: float = 0.0, error: Exception | None = None) -> None:
        super().__init__(name, CheckConfig(type="scripted"), context)
        self.cost = cost
        self.error = error
        self.starts: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def run(self) -> list[Finding]:
        self.starts.append(self.context.clock.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.error:
                raise self.error
            clock = self.context.clock
            if isinstance(clock, FakeClock):
                clock.consume(self.cost)
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(self.cost)
            return [Finding("down", Status.OK, "fine")]
        finally:
            self.in_flight -= 1


def make_scheduler(clock: Any, concurrency: int = 100) -> tuple[Scheduler, list[RunResult], MonitorMetrics]:
    results: list[RunResult] = []
    metrics = MonitorMetrics()
    return Scheduler(clock, metrics, concurrency, results.append), results, metrics


@pytest.fixture
def context(fake_clock: FakeClock, http_session) -> CheckContext:
    return CheckContext(http_session, fake_clock, MonitorMetrics())


async def test_a_thousand_intervals_give_a_thousand_runs_without_drift(fake_clock, context) -> None:
    scheduler, _results, _ = make_scheduler(fake_clock)
    check = ScriptedCheck("api", context, cost=0.3)
    scheduler.add(check, interval=1.0, timeout=0.9)
    await fake_clock.advance(1000.0)
    await scheduler.stop()
    assert abs(len(check.starts) - 1000) <= 1
    offset = start_offset("api", 1.0)
    assert all(start == pytest.approx(offset + i) for i, start in enumerate(check.starts))


async def test_a_run_longer_than_its_interval_skips_slots_instead_of_bursting(fake_clock, context) -> None:
    scheduler, _, _ = make_scheduler(fake_clock)
    check = ScriptedCheck("slow", context, cost=1.5)
    scheduler.add(check, interval=1.0, timeout=10.0)
    await fake_clock.advance(100.0)
    await scheduler.stop()
    assert check.max_in_flight == 1
    gaps = {round(b - a, 6) for a, b in zip(check.starts, check.starts[1:], strict=False)}
    assert gaps == {2.0}


def test_start_offsets_spread_a_thousand_checks() -> None:
    offsets = [start_offset(f"check-{i}", 1.0) for i in range(1000)]
    per_millisecond: dict[int, int] = {}
    for offset in offsets:
        per_millisecond[int(offset * 1000)] = per_millisecond.get(int(offset * 1000), 0) + 1
    assert max(per_millisecond.values()) <= 8
    assert len(per_millisecond) > 500
    assert all(0 <= offset < 1.0 for offset in offsets)
    assert start_offset("api", 3600) < 10.0


def test_next_due_stays_on_the_grid() -> None:
    assert next_due(10.0, 1.0, 10.5) == 11.0
    assert next_due(10.0, 1.0, 13.2) == 14.0
    assert next_due(10.0, 1.0, 11.0) == 11.0


async def test_concurrency_bound_holds(fake_clock, context) -> None:
    scheduler, _, _ = make_scheduler(fake_clock, concurrency=2)
    in_flight = {"now": 0, "max": 0}
    gate = asyncio.Event()

    class Blocking(ScriptedCheck):
        async def run(self) -> list[Finding]:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
            await gate.wait()
            in_flight["now"] -= 1
            return [Finding("down", Status.OK, "fine")]

    for i in range(10):
        scheduler.add(Blocking(f"c{i}", context), interval=60.0, timeout=30.0)
    await fake_clock.advance(11.0)
    assert in_flight["max"] == 2
    gate.set()
    await settle()
    await scheduler.stop()


async def test_lateness_is_recorded(fake_clock, context) -> None:
    scheduler, _, metrics = make_scheduler(fake_clock)
    scheduler.add(ScriptedCheck("api", context), interval=5.0, timeout=1.0)
    await fake_clock.advance(50.0)
    await scheduler.stop()
    count = metrics.registry.get_sample_value("health_monitor_scheduler_lateness_seconds_count")
    assert count == 10


async def test_a_hanging_check_times_out_without_delaying_another(http_session) -> None:
    clock = SystemClock()
    context = CheckContext(http_session, clock, MonitorMetrics())
    scheduler, results, _ = make_scheduler(clock)
    hanging = ScriptedCheck("hangs", context, cost=3600.0)
    quick = ScriptedCheck("quick", context, cost=0.0)
    scheduler.add(hanging, interval=0.5, timeout=0.4)
    scheduler.add(quick, interval=0.02, timeout=0.4)
    deadline = asyncio.get_running_loop().time() + 10
    while not any(r.check == "hangs" for r in results) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    await scheduler.stop()
    (timed_out, *_) = [r for r in results if r.check == "hangs"]
    assert timed_out.status is Status.CRITICAL
    assert "timeout" in timed_out.findings[0].summary
    quick_runs_before = [r for r in results[: results.index(timed_out)] if r.check == "quick"]
    assert len(quick_runs_before) >= 3


async def test_an_exception_becomes_an_unknown_finding_and_the_schedule_goes_on(fake_clock, context) -> None:
    scheduler, results, _ = make_scheduler(fake_clock)
    scheduler.add(ScriptedCheck("broken", context, error=RuntimeError("boom")), interval=1.0, timeout=1.0)
    await fake_clock.advance(5.0)
    await scheduler.stop()
    assert len(results) >= 4
    finding = results[0].findings[0]
    assert (finding.code, finding.status) == ("error", Status.UNKNOWN)
    assert "RuntimeError: boom" in finding.summary


async def test_a_failing_result_handler_does_not_stop_the_schedule(fake_clock, context) -> None:
    calls = []

    def handler(result: RunResult) -> None:
        calls.append(result)
        raise ValueError("handler bug")

    scheduler = Scheduler(fake_clock, MonitorMetrics(), 10, handler)
    scheduler.add(ScriptedCheck("api", context), interval=1.0, timeout=1.0)
    await fake_clock.advance(5.0)
    await scheduler.stop()
    assert len(calls) >= 4


async def test_run_check_reports_a_check_that_returns_nothing(context) -> None:
    class Empty(ScriptedCheck):
        async def run(self) -> list[Finding]:
            return []

    result = await run_check(Empty("empty", context), timeout=1.0)
    assert result.status is Status.UNKNOWN
    assert "no finding" in result.findings[0].summary
