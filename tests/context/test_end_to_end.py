"""The playbook's diagnosis in a running daemon, against local fake Railway and Sentry
servers (reached through `api_url`) and a local Slack receiver: the target fails, the page
carries the last deploy's commit and the top Sentry issue; `action ... rollback --yes`
reaches Railway with the right deployment and lands on the timeline and in incidents.log;
change events arrive by webhook; a vendor that takes 10 s does not hold the page."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.cli import main
from monitor.daemon import Daemon
from monitor.model import Incident
from monitor.postmortem import render_postmortem
from monitor.store import StoreUnavailable
from tests.alerting_helpers import Receiver
from tests.conftest import ServeApp
from tests.context.helpers import RAILWAY_TOKEN, SENTRY_TOKEN, deployments_answer, logs_answer, sentry_issues
from tests.net import free_port, running_daemon, wait_until

API_TOKEN = "api-token-0123456789"
HOOK_SECRET = "hook-secret-0123456789"


@dataclass
class FakeRailway:
    """Railway's GraphQL endpoint and status page, as the reference documents them."""

    calls: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    slow: bool = False
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/graphql/v2", self.graphql)
        app.router.add_get("/status", self.status)
        return app

    async def graphql(self, request: web.Request) -> web.Response:
        body = await request.json()
        query, variables = body["query"], body["variables"]
        operation = query.split("(")[0].split()[-1]
        self.calls.append((operation, variables, dict(request.headers)))
        if self.slow:
            await asyncio.wait_for(self.released.wait(), timeout=10)
        now = datetime.now(UTC)
        answers = {
            "Deployments": deployments_answer(base=now),
            "DeploymentLogs": logs_answer(extra_secret=RAILWAY_TOKEN, base=now),
            "DeploymentRollback": {"data": {"deploymentRollback": True}},
            "DeploymentRestart": {"data": {"deploymentRestart": True}},
        }
        return web.json_response(answers.get(operation, {"errors": [{"message": "unknown"}], "data": None}))

    async def status(self, _: web.Request) -> web.Response:
        return web.json_response({"page": {"name": "Railway", "status": "UP"}, "activeIncidents": []})

    def operations(self, name: str) -> list[dict[str, Any]]:
        return [variables for operation, variables, _ in self.calls if operation == name]


@dataclass
class FakeSentry:
    slow: bool = False
    released: asyncio.Event = field(default_factory=asyncio.Event)
    authorizations: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/0/organizations/acme/issues/", self.issues)
        return app

    async def issues(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization", ""))
        if self.slow:
            await asyncio.wait_for(self.released.wait(), timeout=10)
        assert request.query["statsPeriod"] == "1h" and request.query["project"] == "42"
        return web.json_response(sentry_issues(base=datetime.now(UTC)))


def failing_target() -> web.Application:
    async def health(_: web.Request) -> web.Response:
        return web.Response(status=503, text="database connection pool exhausted")

    app = web.Application()
    app.router.add_get("/api/health", health)
    return app


@dataclass
class World:
    config: Path
    port: int
    railway: FakeRailway
    sentry: FakeSentry
    slack: Receiver
    tmp_path: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def world(
    tmp_path: Path, serve: ServeApp, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> AsyncIterator[Callable[[str], World]]:
    railway, sentry, slack = FakeRailway(), FakeSentry(), Receiver()
    railway_server = await serve(railway.app())
    sentry_server = await serve(sentry.app())
    slack_server = await serve(slack.app())
    target = await serve(failing_target())
    for name, value in {
        "RAILWAY_TOKEN": RAILWAY_TOKEN, "SENTRY_TOKEN": SENTRY_TOKEN, "MONITOR_API_TOKEN": API_TOKEN,
        "HOOK_SECRET": HOOK_SECRET, "SLACK_WEBHOOK": f"http://127.0.0.1:{slack_server.port}/hook",
    }.items():
        monkeypatch.setenv(name, value)

    def build(timeout: str) -> World:
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
api_token_env = "MONITOR_API_TOKEN"

[checks.api]
type = "http"
url = "http://127.0.0.1:{target.port}/api/health"
interval = "100ms"
timeout = "1s"
failure_threshold = 1
severity = "P1"
impact = "customers cannot check out"

[context]
timeout = "{timeout}"
webhook_secret_env = "HOOK_SECRET"

[context.railway]
token_env = "RAILWAY_TOKEN"
project_id = "p-1"
environment_id = "e-1"
service_id = "s-web"
api_url = "http://127.0.0.1:{railway_server.port}/graphql/v2"
status_url = "http://127.0.0.1:{railway_server.port}/status"
checks = ["api"]

[context.sentry]
token_env = "SENTRY_TOKEN"
organization = "acme"
project_id = 42
api_url = "http://127.0.0.1:{sentry_server.port}/api/0/"

[sinks.slack]
type = "slack"
webhook_url_env = "SLACK_WEBHOOK"
""")
        return World(config, port, railway, sentry, slack, tmp_path)

    yield build
    railway.released.set()
    sentry.released.set()


def page(slack: Receiver) -> str:
    return next(payload["text"] for payload in slack.received if "INCIDENT DETECTED" in payload["text"])


async def on_timeline(daemon: Daemon, incident_id: int, entry: str) -> bool:
    return entry in await timeline(daemon, incident_id)


async def timeline(daemon: Daemon, incident_id: int) -> list[str]:
    incident = await daemon.store.get_incident(incident_id)
    return [f"{event.kind}: {event.text}" for event in incident.timeline] if incident else []


async def only_incident(daemon: Daemon) -> Incident:
    (incident,) = await daemon.store.open_incidents()
    return incident


async def test_the_page_brings_the_diagnosis_and_a_rollback_is_one_command_away(world) -> None:
    w: World = world("2s")
    async with running_daemon(w.config) as daemon:
        await wait_until(lambda: any("INCIDENT DETECTED" in p["text"] for p in w.slack.received), "the page")
        text = page(w.slack)
        incident = await only_incident(daemon)
        assert "Diagnosis:" in text
        assert 'Last deploy: SUCCESS 4m before detection: abc1234 "fix checkout" by alice (main)' in text
        assert "Broken deploy: FAILED 20m before detection" in text
        assert "ERROR pool exhausted &lt;!channel&gt;" in text, "log lines are escaped for Slack"
        assert "ERROR auth failed with token *** at db.py:42" in text
        assert 'WEB-1A2 "OperationalError: too many connections" in checkout.views.pay: 150 events, 12 users' in text
        assert "(NEW since the last deploy)" in text
        assert f"health-monitor action {incident.id} rollback --to d-1" in text
        assert RAILWAY_TOKEN not in json.dumps(w.slack.received)
        assert w.railway.operations("DeploymentLogs")[0]["deploymentId"] == "d-3"
        assert w.railway.calls[0][2]["Authorization"] == f"Bearer {RAILWAY_TOKEN}"
        assert w.sentry.authorizations == [f"Bearer {SENTRY_TOKEN}"]
        entries = await timeline(daemon, incident.id)
        assert sum(entry.startswith("context: ") for entry in entries) == 1

        code = await asyncio.to_thread(
            main, ["action", str(incident.id), "rollback", "--yes", "--by", "alice", "--config", str(w.config)]
        )
        assert code == 0
        assert w.railway.operations("DeploymentRollback") == [{"id": "d-1"}]
        ran = 'alice ran rollback to d-1 (0ld1111 "add invoices"): Railway accepted (deploymentRollback = true)'
        await wait_until(lambda: on_timeline(daemon, incident.id, f"action: {ran}"), "the action on the timeline")
        log = (w.tmp_path / "incidents.log").read_text()
        assert f"Incident action - [P1] api: {ran}" in log

        async with aiohttp.ClientSession() as http:
            async with http.get(w.url(f"/api/incidents/{incident.id}")) as response:
                shown = await response.json()
            assert shown["context"]["railway"]["last_deploy"]["commit_hash"] == "abc1234def"
            assert shown["context"]["sentry"]["issues"][0]["short_id"] == "WEB-1A2"
            async with http.get(w.url("/")) as response:
                assert "fix checkout" in await response.text()
        resolved = await daemon.store.get_incident(incident.id)
        assert resolved is not None
        deliveries = await daemon.store.deliveries_for(incident.id)
        draft = render_postmortem(resolved, deliveries, "shop", datetime.now(UTC))
        assert "## Diagnosis context" in draft and "abc1234" in draft


async def test_the_api_runs_an_action_with_the_bearer_token_only(world) -> None:
    w: World = world("2s")
    async with running_daemon(w.config) as daemon:
        await wait_until(lambda: w.slack.received, "the page")
        incident = await only_incident(daemon)
        url = w.url(f"/api/incidents/{incident.id}/actions/restart")
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json={"by": "bob"}) as response:
                assert response.status == 401
            assert w.railway.operations("DeploymentRestart") == []
            headers = {"Authorization": f"Bearer {API_TOKEN}"}
            async with http.post(url, json={"by": "bob"}, headers=headers) as response:
                answer = await response.json()
            assert response.status == 200 and answer["ok"]
            async with http.post(w.url(f"/api/incidents/{incident.id}/actions/scale"), headers=headers) as response:
                assert response.status == 404
        assert w.railway.operations("DeploymentRestart") == [{"id": "d-3"}]
        assert any(entry.startswith("action: bob ran restart of d-3") for entry in await timeline(daemon, incident.id))


async def test_deploy_webhooks_become_change_events_and_timeline_notes(world) -> None:
    w: World = world("2s")
    async with running_daemon(w.config) as daemon, aiohttp.ClientSession() as http:
        await wait_until(lambda: w.slack.received, "the page")
        incident = await only_incident(daemon)
        await post_hooks(w, http, incident)
        async with http.get(w.url("/api/changes")) as response:
            (change,) = (await response.json())["changes"]
        assert (change["deployment_id"], change["status"], change["author"]) == ("d-4", "BUILDING", "carol")
        assert "change: deploy def5678 started" in await timeline(daemon, incident.id)


async def test_a_webhook_the_state_store_cannot_record_is_503_so_that_railway_retries(
    world, monkeypatch: pytest.MonkeyPatch
) -> None:
    w: World = world("2s")
    hook = {"type": "Deployment.deployed", "details": {"id": "d-5", "status": "SUCCESS"},
            "resource": {"service": {"id": "s-web"}, "deployment": {"id": "d-5"}}}
    async with running_daemon(w.config) as daemon, aiohttp.ClientSession() as http:
        async def full(_: object) -> bool:
            raise StoreUnavailable("database or disk is full")

        with monkeypatch.context() as patched:
            patched.setattr(daemon.side.journal, "record_change", full)
            async with http.post(w.url(f"/api/hooks/railway?secret={HOOK_SECRET}"), json=hook) as response:
                assert response.status == 503
                assert "disk is full" in (await response.json())["error"]
        async with http.post(w.url(f"/api/hooks/railway?secret={HOOK_SECRET}"), json=hook) as response:
            assert response.status == 200, "Railway's retry is recorded once the store takes writes again"
        async with http.get(w.url("/api/changes")) as response:
            assert [change["deployment_id"] for change in (await response.json())["changes"]] == ["d-5"]


async def post_hooks(w: World, http: aiohttp.ClientSession, incident: Incident) -> None:
    """A wrong secret, a malformed event, then Railway's deployment webhook for the incident's service."""
    hook = {
        "type": "Deployment.building", "timestamp": datetime.now(UTC).isoformat(),
        "details": {"id": "d-4", "status": "BUILDING", "branch": "main", "commitHash": "def5678aaa",
                    "commitAuthor": "carol", "commitMessage": "hotfix pool size"},
        "resource": {"project": {"id": "p-1"}, "environment": {"id": "e-1"},
                     "service": {"id": "s-web", "name": "web"}, "deployment": {"id": "d-4"}},
    }
    async with http.post(w.url("/api/hooks/railway?secret=wrong"), json=hook) as response:
        assert response.status == 401
    async with http.post(w.url("/api/hooks/railway"), json={"type": "Deployment.building"},
                         headers={"X-Webhook-Secret": HOOK_SECRET}) as response:
        assert response.status == 400
    async with http.post(w.url(f"/api/hooks/railway?secret={HOOK_SECRET}"), json=hook) as response:
        assert response.status == 200
        assert (await response.json())["noted_on_incidents"] == [incident.id]


async def test_a_vendor_that_takes_10s_does_not_hold_the_page(world) -> None:
    w: World = world("300ms")
    w.sentry.slow = True
    async with running_daemon(w.config):
        await wait_until(lambda: w.slack.received, "the page", limit=8)
        text = page(w.slack)
        assert "Sentry: no answer within 300ms" in text
        assert 'Last deploy: SUCCESS 4m before detection: abc1234 "fix checkout"' in text
        assert not w.sentry.released.is_set(), "the page went out while Sentry was still thinking"
