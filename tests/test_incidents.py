"""Incident lifecycle: thresholds, severity rises, resolution, restarts, incidents.log."""

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from checks.base import CheckConfig
from monitor.incident_core import IncidentEventKind, classify
from monitor.model import CHECK_ERROR_CODE, Finding, Severity, Status
from tests.fakes import FakeClock
from tests.incident_harness import Harness as PipelineHarness
from tests.incident_harness import http_check, write_config

DOWN = Finding("down", Status.CRITICAL, "GET http://127.0.0.1/health failed: HTTP 503", Severity.P1, ("body: oops",))
UP = Finding("down", Status.OK, "HTTP 200 in 12ms")
SLOW = Finding("slow", Status.WARNING, "answered in 3s", Severity.P3)


def api_config(**keys: object) -> CheckConfig:
    return CheckConfig.model_validate({"type": "http", "failure_threshold": 2, "success_threshold": 2, **keys})


class Harness(PipelineHarness):
    """One http check `api` with thresholds 2/2; each run comes 30 s after the last."""

    async def feed(self, *runs: list[Finding]) -> list[IncidentEventKind]:
        kinds = []
        for findings in runs:
            await self.clock.advance(30)
            events = self.manager.observe("api", findings, self.clock.now())
            await self.pipeline.commit(events)
            kinds += [event.kind for event in events if event.heard]
        return kinds

    @property
    def log_path(self) -> Path:
        return Path(self.config.monitor.incident_log)


@pytest.fixture
async def harness(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[Harness]:
    checks = http_check("api", failure_threshold="2", success_threshold="2")
    harness = await Harness.open(write_config(tmp_path, checks, sinks=("log",)), fake_clock)
    yield harness
    await harness.close()


async def test_one_failure_is_soft_the_second_opens(harness) -> None:
    assert await harness.feed([DOWN]) == []
    assert await harness.feed([DOWN]) == [IncidentEventKind.OPENED]
    (incident,) = harness.manager.open_incidents
    assert (incident.key, incident.severity, incident.failing_runs) == ("api/down", Severity.P1, 2)
    assert [event.kind for event in incident.timeline] == ["first_failure", "opened", "paged"]
    assert incident.timeline[0].at < incident.timeline[1].at
    assert incident.runbook == "Complete Outage"


async def test_a_soft_failure_that_recovers_opens_nothing(harness) -> None:
    assert await harness.feed([DOWN], [UP], [DOWN], [UP]) == []
    assert harness.manager.open_incidents == []


async def test_resolution_needs_success_threshold_good_runs(harness) -> None:
    await harness.feed([DOWN], [DOWN])
    assert await harness.feed([UP]) == []
    assert await harness.feed([DOWN], [UP]) == []
    assert await harness.feed([UP]) == [IncidentEventKind.RESOLVED]
    incident = (await harness.store.recent_incidents())[0]
    assert incident.state == "resolved"
    assert incident.resolution is not None and "2 consecutive good runs" in incident.resolution
    assert incident.failing_runs == 3


async def test_severity_rises_while_open_and_never_falls(harness) -> None:
    warning = Finding("down", Status.CRITICAL, "partial", Severity.P3)
    await harness.feed([warning], [warning])
    assert harness.manager.open_incidents[0].severity is Severity.P3
    assert await harness.feed([DOWN]) == [IncidentEventKind.SEVERITY_RAISED]
    assert await harness.feed([warning]) == []
    assert harness.manager.open_incidents[0].severity is Severity.P1


async def test_each_code_is_its_own_incident(harness) -> None:
    kinds = await harness.feed([UP, SLOW], [UP, SLOW])
    assert kinds == [IncidentEventKind.OPENED]
    assert [i.key for i in harness.manager.open_incidents] == ["api/slow"]


async def test_a_check_that_could_not_run_neither_confirms_nor_clears(harness) -> None:
    error = Finding(CHECK_ERROR_CODE, Status.UNKNOWN, "api could not run: RuntimeError: bug", blocks=("*",))
    await harness.feed([DOWN], [DOWN])
    await harness.feed([error], [error])
    keys = [i.key for i in harness.manager.open_incidents]
    assert keys == ["api/down", "api/error"]


async def test_a_failure_that_blocks_a_code_keeps_its_incident_open(harness) -> None:
    down = Finding("down", Status.CRITICAL, "refused", Severity.P1, blocks=("slow",))
    await harness.feed([UP, SLOW], [UP, SLOW])
    assert await harness.feed([down], [down], [down]) == [IncidentEventKind.OPENED]
    assert {i.key for i in harness.manager.open_incidents} == {"api/slow", "api/down"}
    assert await harness.feed([UP], [UP]) == [IncidentEventKind.RESOLVED, IncidentEventKind.RESOLVED]


async def test_open_incidents_survive_a_restart_and_are_not_opened_again(harness) -> None:
    await harness.feed([DOWN], [DOWN])
    await harness.restart()
    assert [i.key for i in harness.manager.open_incidents] == ["api/down"]
    assert await harness.feed([DOWN], [DOWN], [DOWN]) == []
    assert await harness.feed([UP], [UP]) == [IncidentEventKind.RESOLVED]
    assert len(await harness.store.recent_incidents()) == 1


async def test_a_removed_check_resolves_its_incidents(harness) -> None:
    await harness.feed([DOWN], [DOWN])
    events = harness.manager.update_config(replace(harness.config, checks={}), harness.clock.now())
    assert [e.kind for e in events] == [IncidentEventKind.RESOLVED]
    assert "removed" in (events[0].incident.resolution or "")


async def test_incident_log_lines_follow_the_contract(harness) -> None:
    await harness.feed([DOWN], [DOWN], [UP], [UP])
    lines = harness.log_path.read_text().splitlines()
    assert lines == [
        "2026-11-26T19:01:00Z: Incident detected - [P1] api: GET http://127.0.0.1/health failed: HTTP 503",
        "2026-11-26T19:02:00Z: Incident resolved - [P1] api: check passing again (2 consecutive good runs: "
        "HTTP 200 in 12ms)",
    ]


def test_classification_uses_overrides_then_the_check_default_then_status() -> None:
    config = api_config(severities={"slow": "P4"})
    assert classify(config, SLOW) is Severity.P4
    assert classify(config, DOWN) is Severity.P1
    assert classify(config, Finding("x", Status.CRITICAL, "")) is Severity.P2
    assert classify(config, Finding("x", Status.WARNING, "")) is Severity.P3
    assert classify(config, Finding("x", Status.UNKNOWN, "")) is Severity.P3
