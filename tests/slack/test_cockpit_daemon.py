"""The Slack cockpit in a running daemon: a failing target opens an incident whose parent
message lands in the fake Slack; signed button clicks and `/incident` commands hit the
daemon's endpoints; the timeline, the edited message and the `response_url` answer are
checked, and the thread survives a restart of the daemon."""

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from alerting.slack.cockpit import ACKNOWLEDGE, RESOLVED_COLOR, ROLLBACK, SNOOZE
from monitor.daemon import Daemon
from monitor.model import Incident
from tests.conftest import ServeApp
from tests.context.helpers import RAILWAY_TOKEN
from tests.context.test_end_to_end import FakeRailway
from tests.net import free_port, running_daemon, wait_until
from tests.slack.fake_slack import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    buttons,
    click_body,
    command_body,
    every_text,
    signed,
)


@dataclass
class Target:
    healthy: bool = False

    def app(self) -> web.Application:
        async def health(_: web.Request) -> web.Response:
            return web.Response(text="ok") if self.healthy else web.Response(status=503, text="<!channel> down")

        app = web.Application()
        app.router.add_get("/health", health)
        return app


@dataclass
class World:
    config: Path
    port: int
    slack: FakeSlack
    target: Target
    response_url: str

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}{path}"
        async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else {}

    async def click(self, action_id: str, value: str, **signing: Any) -> int:
        body = click_body(action_id, value, self.response_url)
        status, _ = await self.post("/api/slack/interactions", body, signed(body, **signing))
        return status

    async def command(self, text: str) -> tuple[int, dict[str, Any]]:
        body = command_body(text, self.response_url)
        return await self.post("/api/slack/commands", body, signed(body))

    async def answer(self, count: int) -> str:
        await wait_until(lambda: len(self.slack.responses) >= count, "the response_url answer")
        response = self.slack.responses[count - 1]
        assert response["response_type"] == "ephemeral"
        return str(response["text"])


@pytest.fixture
def railway() -> FakeRailway:
    return FakeRailway()


@pytest.fixture
async def world(tmp_path: Path, serve: ServeApp, monkeypatch: pytest.MonkeyPatch, clean_env: None,
                railway: FakeRailway) -> World:
    slack, target = FakeSlack(), Target()
    railway_server = await serve(railway.app())
    monkeypatch.setenv("RAILWAY_TOKEN", RAILWAY_TOKEN)
    slack_server = await serve(slack.app())
    target_server = await serve(target.app())
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    port = free_port()
    config = tmp_path / "monitor.toml"
    config.write_text(f"""
[monitor]
name = "shop"
state_path = "{tmp_path}/state.db"
incident_log = "{tmp_path}/incidents.log"
postmortem_dir = "{tmp_path}/postmortems"

[server]
listen = "127.0.0.1:{port}"

[checks.api]
type = "http"
url = "http://127.0.0.1:{target_server.port}/health"
interval = "100ms"
timeout = "1s"
failure_threshold = 1
severity = "P1"
impact = "customers cannot check out"

[sinks.slack-oncall]
type = "slack"
bot_token_env = "SLACK_BOT_TOKEN"
channel = "C0123456789"
signing_secret_env = "SLACK_SIGNING_SECRET"
api_url = "http://127.0.0.1:{slack_server.port}/api/"
mention = {{ P1 = "<!subteam^S0123>" }}

[context.railway]
token_env = "RAILWAY_TOKEN"
project_id = "p-1"
environment_id = "e-1"
service_id = "s-web"
api_url = "http://127.0.0.1:{railway_server.port}/graphql/v2"
status_url = "http://127.0.0.1:{railway_server.port}/status"
checks = ["api"]
""")
    return World(config, port, slack, target, f"http://127.0.0.1:{slack_server.port}/response")


@pytest.fixture
async def paged(world: World) -> AsyncIterator[tuple[Daemon, Incident]]:
    async with running_daemon(world.config) as daemon:
        await wait_until(lambda: world.slack.parents(), "the parent message")
        (incident,) = await daemon.store.open_incidents()
        yield daemon, incident


async def on_timeline(daemon: Daemon, incident_id: int, entry: str) -> bool:
    return entry in await timeline(daemon, incident_id)


async def timeline(daemon: Daemon, incident_id: int) -> list[str]:
    incident = await daemon.store.get_incident(incident_id)
    assert incident is not None
    return [f"{event.kind}: {event.text}" for event in incident.timeline]


def latest_edit(world: World) -> dict[str, Any]:
    return world.slack.updates()[-1]


async def test_acknowledge_from_the_button(world: World, paged: tuple[Daemon, Incident]) -> None:
    daemon, incident = paged
    parent_ts = "1700000000.000001"
    assert set(buttons(world.slack.parents()[0])) == {ACKNOWLEDGE, SNOOZE, ROLLBACK}

    assert await world.click(ACKNOWLEDGE, str(incident.id)) == 200
    answer = await world.answer(1)
    assert answer == f"alice (U0ALICE) acknowledged incident #{incident.id} (api/{incident.code}): escalation stopped."
    assert "acknowledged: acknowledged by alice (U0ALICE)" in await timeline(daemon, incident.id)
    await wait_until(lambda: any("ACKNOWLEDGED" in r["text"].upper() for r in world.slack.replies()),
                     "the acknowledgement in the thread")
    edit = latest_edit(world)
    assert edit["ts"] == parent_ts
    assert "*Acknowledged by*\nalice (U0ALICE)" in every_text(edit)
    assert ACKNOWLEDGE not in buttons(edit)
    assert all(reply["thread_ts"] == parent_ts for reply in world.slack.replies())

    assert await world.click(ACKNOWLEDGE, str(incident.id)) == 200
    assert await world.answer(2) == f"Incident #{incident.id} was already acknowledged by alice (U0ALICE)."


async def test_snooze_silences_the_check_for_an_hour(world: World, paged: tuple[Daemon, Incident]) -> None:
    daemon, incident = paged
    assert await world.click(SNOOZE, str(incident.id)) == 200
    answer = await world.answer(1)
    assert answer.startswith("alice (U0ALICE) snoozed api for 1h (until ")
    (silence,) = await daemon.store.silences(daemon.clock.now())
    assert silence.check == "api" and (silence.ends_at - silence.starts_at).total_seconds() == 3600
    assert silence.reason == "snoozed from Slack by alice (U0ALICE)"
    entries = await timeline(daemon, incident.id)
    assert any(entry.startswith("silenced: alice (U0ALICE) snoozed api for 1h") for entry in entries)
    assert any("Latest: alice (U0ALICE) snoozed api" in text for text in every_text(latest_edit(world)))


async def test_forged_or_replayed_clicks_change_nothing(world: World, paged: tuple[Daemon, Incident]) -> None:
    daemon, incident = paged
    assert await world.click(ACKNOWLEDGE, str(incident.id), secret="not-the-secret") == 401
    assert await world.click(ACKNOWLEDGE, str(incident.id), timestamp=int(time.time()) - 600) == 401
    body = click_body(ACKNOWLEDGE, str(incident.id), world.response_url)
    status, answer = await world.post("/api/slack/interactions", body, {})
    assert status == 401 and "required" in answer["error"]
    refreshed = await daemon.store.get_incident(incident.id)
    assert refreshed is not None and not refreshed.acknowledged
    assert world.slack.responses == []


async def test_a_click_on_an_unknown_incident_says_so(world: World, paged: tuple[Daemon, Incident]) -> None:
    assert await world.click(ACKNOWLEDGE, "999") == 200
    assert await world.answer(1) == "There is no incident 999."


async def test_a_click_on_a_resolved_incident_changes_nothing_and_shows_it_resolved(
    world: World, paged: tuple[Daemon, Incident]
) -> None:
    daemon, incident = paged
    world.target.healthy = True
    await wait_until(lambda: not daemon.incidents.open_incidents, "the resolution")
    await wait_until(lambda: any(r["text"].startswith("✅") for r in world.slack.replies()), "the resolution reply")
    assert await world.click(ACKNOWLEDGE, str(incident.id)) == 200
    assert await world.answer(1) == f"Incident #{incident.id} is already resolved: nothing to acknowledge."
    assert await world.click(SNOOZE, str(incident.id)) == 200
    assert await world.answer(2) == f"Incident #{incident.id} is already resolved: nothing to snooze."
    assert await daemon.store.silences(daemon.clock.now()) == []
    edit = latest_edit(world)
    assert edit["attachments"][0]["color"] == RESOLVED_COLOR and buttons(edit) == {}
    resolution = next(r for r in world.slack.replies() if r["text"].startswith("✅"))
    assert resolution["reply_broadcast"] is True


async def test_the_incident_slash_command(world: World, paged: tuple[Daemon, Incident]) -> None:
    daemon, incident = paged
    status, listed = await world.command("list")
    assert status == 200 and listed["response_type"] == "ephemeral"
    assert listed["text"].startswith(f"#{incident.id} P1 api/{incident.code}: Open for ")
    assert "<!channel>" not in listed["text"]

    _, shown = await world.command(f"status #{incident.id}")
    assert shown["text"].splitlines()[0].startswith(f"#{incident.id} P1 api/{incident.code}: Open for ")

    _, acked = await world.command(f"ack {incident.id}")
    assert acked["text"] == f"bob (U0BOB) acknowledged incident #{incident.id} ({incident.key}): escalation stopped."
    assert "acknowledged: acknowledged by bob (U0BOB)" in await timeline(daemon, incident.id)

    _, unknown = await world.command("status 999")
    assert unknown["text"] == "There is no incident 999."
    _, usage = await world.command("frobnicate")
    assert usage["text"].startswith("Usage: /incident list")

    body = command_body("list", world.response_url)
    status, _ = await world.post("/api/slack/commands", body, signed(body, secret="wrong"))
    assert status == 401


async def test_the_thread_survives_a_restart_of_the_daemon(world: World) -> None:
    async with running_daemon(world.config) as daemon:
        await wait_until(lambda: world.slack.parents(), "the parent message")
        (incident,) = await daemon.store.open_incidents()
    world.target.healthy = True
    async with running_daemon(world.config) as daemon:
        await wait_until(lambda: any(r["text"].startswith("✅") for r in world.slack.replies()), "the resolution")
    assert len(world.slack.parents()) == 1, "no second parent after the restart"
    resolution = next(r for r in world.slack.replies() if r["text"].startswith("✅"))
    assert resolution["thread_ts"] == "1700000000.000001"
    assert f"incident #{incident.id}" in " ".join(every_text(resolution))


async def test_without_an_app_mode_sink_the_endpoints_are_absent(world: World, tmp_path: Path) -> None:
    text = world.config.read_text().replace('signing_secret_env = "SLACK_SIGNING_SECRET"\n', "")
    world.config.write_text(text)
    async with running_daemon(world.config):
        body = command_body("list", world.response_url)
        status, answer = await world.post("/api/slack/commands", body, signed(body))
    assert status == 404 and "signing_secret_env" in answer["error"]




async def test_roll_back_from_the_button_answers_at_once_and_reports_when_done(
    world: World, railway: FakeRailway, paged: tuple[Daemon, Incident]
) -> None:
    daemon, incident = paged
    rollback = buttons(world.slack.parents()[0])[ROLLBACK]
    assert rollback["text"]["text"] == "Roll back to 0ld1111"
    assert "confirm" in rollback, "Slack asks before it sends the click"
    railway.slow = True
    assert await world.click(ROLLBACK, rollback["value"]) == 200, "answered while Railway has not answered yet"
    assert world.slack.responses == []
    railway.released.set()
    answer = await world.answer(1)
    ran = 'alice (U0ALICE) ran rollback to d-1 (0ld1111 "add invoices"): Railway accepted (deploymentRollback = true)'
    assert answer == ran
    assert railway.operations("DeploymentRollback") == [{"id": "d-1"}]
    await wait_until(lambda: on_timeline(daemon, incident.id, f"action: {ran}"), "the rollback on the timeline")
