"""A silence or maintenance window mutes every notification of the checks it covers (the
timeline says what was muted), except the resolution of an incident that had already paged;
the status page shows such checks as silenced or in maintenance. On a fake clock."""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from alerting.base import NotificationKind as Kind
from tests.fakes import FakeClock
from tests.incident_harness import CHAIN, DOWN, UP, Harness, http_check, write_config
from tests.net import LOOPBACK, free_port, running_daemon

# START is Thursday 19:00Z; this window runs 19:05-20:05.
WINDOW = """
[[maintenance]]
name = "database upgrade"
checks = ["api"]
reason = "pg 17"
days = ["thu"]
at = "19:05"
duration = "1h"
"""


@pytest.fixture
async def make(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    made: list[Harness] = []

    async def build(extra: str = CHAIN) -> Harness:
        checks = http_check("api", failure_threshold="1") + http_check("web", failure_threshold="1")
        harness = await Harness.open(write_config(tmp_path, checks, extra), fake_clock)
        made.append(harness)
        return harness

    yield build
    for harness in made:
        await harness.close()


def heard(harness: Harness) -> list[tuple[float, str, Kind]]:
    return sorted(
        (round(r.minute, 2), name, r.kind) for name, sink in harness.sinks.items() for r in sink.received
    )


async def muted(harness: Harness, key: str) -> list[str]:
    incident = next(i for i in await harness.store.recent_incidents() if i.key == key)
    return [event.text for event in incident.timeline if event.kind == "muted"]


async def test_a_silence_mutes_everything_about_a_paged_incident_but_its_resolution(make) -> None:
    harness = await make()
    await harness.observe("api", [DOWN])
    await harness.minutes(5)
    before = heard(harness)
    assert [kind for _, name, kind in before if name == "oncall"] == [Kind.INITIAL]
    now = harness.clock.now()
    await harness.store.add_silence("api", now, now + timedelta(hours=2), "deploy")
    await harness.minutes(65)
    (incident,) = harness.manager.open_incidents
    await harness.pipeline.acknowledge(incident.id, "alice", "watching")
    await harness.minutes(1)
    assert heard(harness) == before, "nothing reaches anyone during the silence"
    texts = await muted(harness, "api/down")
    assert any(text.startswith("escalation to level 2 (Team Lead) not sent: silenced until") for text in texts)
    assert any(text.startswith("escalation to level 4 (CTO) not sent") for text in texts)
    assert any(text.startswith("response-time breach notice not sent") for text in texts)
    assert any(text.startswith("status update not sent") for text in texts)
    assert any(text.startswith("acknowledgement notice not sent") for text in texts)
    assert all("(silence #1: deploy)" in text for text in texts)

    await harness.observe("api", [UP], [UP])
    await harness.minutes(0.1)
    assert [(name, kind) for _, name, kind in heard(harness)[len(before):]] == [
        (name, Kind.RESOLUTION) for name in ("cto", "lead", "log", "manager", "oncall")
    ]


async def test_a_silence_on_another_check_mutes_nothing_here(make) -> None:
    harness = await make()
    now = harness.clock.now()
    await harness.store.add_silence("web", now, now + timedelta(hours=2), "deploy")
    await harness.observe("api", [DOWN])
    await harness.minutes(16)
    assert (15.0, "lead", Kind.ESCALATION) in heard(harness)
    assert await muted(harness, "api/down") == []


async def test_a_maintenance_window_that_begins_after_the_page_mutes_what_follows(make) -> None:
    harness = await make(CHAIN + WINDOW)
    await harness.observe("api", [DOWN])
    await harness.observe("web", [DOWN])
    await harness.minutes(16)
    later = [(r.notification.incident.key, r.kind) for sink in harness.sinks.values() for r in sink.received
             if r.kind is not Kind.INITIAL]
    assert ("web/down", Kind.ESCALATION) in later, "the window covers api only"
    assert {key for key, _ in later} == {"web/down"}
    texts = await muted(harness, "api/down")
    assert texts and all(text.endswith("not sent: maintenance window 'database upgrade': pg 17") for text in texts)
    assert any(text.startswith("escalation to level 2 (Team Lead)") for text in texts)


async def test_the_status_page_shows_silenced_and_in_maintenance_checks_as_such(tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(
        f'[monitor]\nstate_path = "state.db"\n[server]\nlisten = "{LOOPBACK}:{free_port()}"\n'
        + "".join(f'[checks.{name}]\ntype = "tcp"\nhost = "{LOOPBACK}"\nport = 9\ninterval = "1h"\n'
                  for name in ("api", "db", "web"))
        + '[[maintenance]]\nname = "upgrade"\nchecks = ["db"]\n'
        + "start = 2000-01-01T00:00:00Z\nend = 2999-01-01T00:00:00Z\n"
    )
    async with running_daemon(config) as daemon:
        now = daemon.clock.now()
        await daemon.store.add_silence("api", now, now + timedelta(hours=1), "deploy")
        async with aiohttp.ClientSession() as http, http.get(f"http://{daemon.config.server.listen}/") as response:
            html = await response.text()
    rows = {name: html.split(f'data-check="{name}"', 1)[1].split("</tr>", 1)[0] for name in ("api", "db", "web")}
    assert ">silenced</span>" in rows["api"] and "silence #1: deploy" in rows["api"]
    assert ">in maintenance</span>" in rows["db"] and "upgrade" in rows["db"]
    assert "hold-" not in rows["web"]
