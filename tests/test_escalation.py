"""The playbook's escalation chain, acknowledgement, response time, status updates,
flapping, dependencies, silences and post-mortems, on a fake clock through the sinks."""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from alerting.base import NotificationKind as Kind
from monitor.model import Finding, Severity, Status
from tests.fakes import FakeClock
from tests.incident_harness import CHAIN, DOWN, UP, Harness, http_check, write_config

P3_DOWN = Finding("down", Status.CRITICAL, "partial outage", Severity.P3)


@pytest.fixture
async def make(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    made: list[Harness] = []

    async def build(checks: str = "", extra: str = CHAIN) -> Harness:
        config = write_config(tmp_path, checks or http_check("api", failure_threshold="1"), extra)
        harness = await Harness.open(config, fake_clock)
        made.append(harness)
        return harness

    yield build
    for harness in made:
        await harness.close()


def escalations(harness: Harness, sink: str) -> list[float]:
    return [minute for minute, kind in harness.kinds(sink) if kind is Kind.ESCALATION]


async def test_unacknowledged_p1_climbs_each_level_once_at_0_15_30_60(make) -> None:
    harness = await make()
    await harness.observe("api", [DOWN])
    await harness.minutes(61)
    assert harness.kinds("oncall")[0] == (0.0, Kind.INITIAL)
    assert [minute for minute, _ in harness.kinds("lead")][:1] == [15.0]
    assert escalations(harness, "lead") == [15.0]
    assert escalations(harness, "manager") == [30.0]
    assert escalations(harness, "cto") == [60.0]
    assert escalations(harness, "oncall") == []
    assert [minute for minute, kind in harness.kinds("log") if kind is Kind.ESCALATION] == [15.0, 30.0, 60.0]
    lines = Path(harness.config.monitor.incident_log).read_text().splitlines()
    assert [line.split(" - ")[0].split(": ", 1)[1] for line in lines] == [
        "Incident detected", "Incident escalated", "Incident response time breached", "Incident escalated",
        "Incident escalated",
    ]
    text = harness.sinks["lead"].received[0].notification
    assert (text.escalation_level, text.escalation_role) == (2, "Team Lead")


async def test_acknowledged_at_minute_20_never_reaches_level_3(make) -> None:
    harness = await make()
    await harness.observe("api", [DOWN])
    await harness.minutes(20)
    (incident,) = harness.manager.open_incidents
    await harness.store.request_acknowledgement(incident.id, harness.clock.now(), "alice", "restarting the service")
    await harness.minutes(50)
    assert harness.sinks["manager"].received == []
    assert harness.sinks["cto"].received == []
    assert (20.02, Kind.ACKNOWLEDGED) in harness.kinds("oncall")
    assert (20.02, Kind.ACKNOWLEDGED) in harness.kinds("lead")
    (incident,) = harness.manager.open_incidents
    assert incident.acknowledged_by == "alice"
    assert incident.timeline[-1].kind == "status_update"
    assert "Status: Mitigating" in incident.timeline[-1].text


async def test_status_updates_every_15_minutes_for_p1(make) -> None:
    harness = await make()
    await harness.observe("api", [DOWN])
    await harness.minutes(61)
    updates = [minute for minute, kind in harness.kinds("log") if kind is Kind.STATUS_UPDATE]
    assert updates == [15.0, 30.0, 45.0, 60.0]
    first = next(r.notification for r in harness.sinks["log"].received if r.kind is Kind.STATUS_UPDATE)
    assert first.status == "Investigating"
    assert any("escalated to level 2" in line for line in first.progress)


async def test_response_time_breach_at_minute_15_is_said_once_to_the_current_level(make) -> None:
    harness = await make()
    await harness.observe("api", [DOWN])
    await harness.minutes(14)
    assert harness.metrics.registry.get_sample_value(
        "health_monitor_incident_response_breaches_total", {"severity": "P1"}
    ) == 0
    await harness.minutes(50)
    breaches = {sink: [m for m, k in harness.kinds(sink) if k is Kind.RESPONSE_BREACHED] for sink in harness.sinks}
    assert breaches == {"oncall": [], "lead": [15.0], "manager": [], "cto": [], "log": [15.0]}
    assert harness.metrics.registry.get_sample_value(
        "health_monitor_incident_response_breaches_total", {"severity": "P1"}
    ) == 1


async def test_a_p3_chain_stops_at_level_2(make) -> None:
    harness = await make()
    await harness.observe("api", [P3_DOWN])
    await harness.minutes(5 * 60)
    assert escalations(harness, "lead") == [15.0]
    assert harness.sinks["manager"].received == [] and harness.sinks["cto"].received == []


async def test_a_severity_rise_is_announced_at_once(make) -> None:
    harness = await make()
    await harness.observe("api", [P3_DOWN])
    await harness.minutes(3)
    await harness.observe("api", [DOWN])
    assert harness.kinds("oncall")[-1] == (3.0, Kind.SEVERITY_RAISED)


async def test_a_restart_between_minute_14_and_16_pages_level_2_once(make) -> None:
    harness = await make()
    await harness.observe("api", [DOWN])
    await harness.minutes(14)
    await harness.close()
    await harness.clock.advance(120)  # the daemon is down from minute 14 to 16
    await harness.start()
    await harness.minutes(10)
    (escalated_at,) = escalations(harness, "lead")
    assert 16.0 <= escalated_at < 16.1
    assert escalations(harness, "manager") == []
    assert [kind for _, kind in harness.kinds("oncall")].count(Kind.INITIAL) == 1


async def test_a_check_alternating_pass_fail_is_reported_as_flapping_once(make) -> None:
    harness = await make(http_check("api", failure_threshold="2"), extra="")
    for _ in range(30):
        await harness.observe("api", [DOWN], [UP])
        await harness.clock.advance(30)
    initials = [r.notification for r in harness.sinks["log"].received if r.kind is Kind.INITIAL]
    assert [(n.incident.key, n.incident.severity) for n in initials] == [("api/flapping", Severity.P3)]
    assert "% state change over the last 21 runs" in initials[0].incident.summary
    assert harness.manager.is_flapping("api")


async def test_flapping_holds_a_noisy_check_and_its_end_resolves_the_notice(make) -> None:
    harness = await make(http_check("api", failure_threshold="1", success_threshold="1"), extra="")
    for _ in range(15):
        await harness.observe("api", [DOWN], [UP])
    sent_while_flapping = len(harness.sinks["log"].received)
    for _ in range(5):
        await harness.observe("api", [DOWN], [UP])
    assert len(harness.sinks["log"].received) == sent_while_flapping
    await harness.observe("api", *[[UP]] * 21)
    assert harness.kinds("log")[-1][1] is Kind.RESOLUTION
    assert harness.sinks["log"].received[-1].notification.incident.key == "api/flapping"


async def test_a_dependent_stays_quiet_while_its_dependency_is_down(make) -> None:
    checks = http_check("db", failure_threshold="1") + http_check(
        "api", failure_threshold="1", depends_on='["db"]'
    )
    harness = await make(checks, extra="")
    db_down = Finding("down", Status.CRITICAL, "db unreachable", Severity.P1)
    await harness.observe("db", [db_down])
    await harness.observe("api", [DOWN], [DOWN])
    keys = [r.notification.incident.key for r in harness.sinks["log"].received]
    assert keys == ["db/down"]
    (db,) = harness.manager.open_incidents
    assert db.impacted == ["api/down"] and db.suppressed_runs == 2
    assert any(event.kind == "impact" and "api/down" in event.text for event in db.timeline)

    await harness.observe("db", [Finding("down", Status.OK, "db fine")], [Finding("down", Status.OK, "db fine")])
    await harness.observe("api", [DOWN])
    keys = [(r.notification.incident.key, r.kind) for r in harness.sinks["log"].received]
    assert keys[-2:] == [("db/down", Kind.RESOLUTION), ("api/down", Kind.INITIAL)]


async def test_a_silence_suppresses_and_its_end_resumes_paging(make) -> None:
    harness = await make()
    now = harness.clock.now()
    await harness.store.add_silence("api", now, now + timedelta(minutes=30), "deploy")
    await harness.minutes(0.05)
    await harness.observe("api", [DOWN])
    await harness.minutes(29)
    assert all(sink.received == [] for sink in harness.sinks.values())
    (incident,) = harness.manager.open_incidents
    assert incident.timeline[-1].kind == "held" and "silence #1: deploy" in incident.timeline[-1].text
    await harness.minutes(2)
    assert harness.kinds("oncall") == [(30.0, Kind.INITIAL)]
    await harness.minutes(15)
    assert escalations(harness, "lead") == [45.0]


async def test_a_maintenance_window_holds_pages_for_the_checks_it_covers(make) -> None:
    window = """
[[maintenance]]
name = "weekly upgrade"
checks = ["api"]
days = ["thu"]
at = "18:30"
duration = "1h"
"""
    checks = http_check("api", failure_threshold="1") + http_check("web", failure_threshold="1")
    harness = await make(checks, extra=window)
    await harness.observe("api", [DOWN])
    await harness.observe("web", [DOWN])
    assert [r.notification.incident.key for r in harness.sinks["log"].received] == ["web/down"]
    await harness.minutes(31)
    received = harness.sinks["log"].received
    pages = [(round(r.minute), r.notification.incident.key) for r in received if r.kind is Kind.INITIAL]
    assert pages == [(0, "web/down"), (30, "api/down")]


async def test_the_post_mortem_draft_lists_every_timeline_event_in_order(make) -> None:
    harness = await make()
    await harness.observe("api", [DOWN])
    await harness.minutes(20)
    (incident,) = harness.manager.open_incidents
    await harness.pipeline.acknowledge(incident.id, "alice", "rolled back")
    await harness.minutes(5)
    await harness.observe("api", [UP], [UP])
    resolved = await harness.store.get_incident(incident.id)
    assert resolved is not None and resolved.postmortem_path is not None
    await harness.minutes(0.1)
    draft = Path(resolved.postmortem_path).read_text()
    positions = [draft.index(event.text) for event in resolved.timeline]
    assert positions == sorted(positions)
    assert "Severity: P1" in draft and "Time to acknowledge: 20m" in draft
    assert "Root Cause" in draft and "TO FILL IN" in draft
    assert "| 1:initial | oncall | sent |" in draft
    resolution = harness.sinks["oncall"].received[-1].notification
    assert resolution.kind is Kind.RESOLUTION and resolution.incident.postmortem_path == resolved.postmortem_path
