"""The Slack app's Request URLs on the daemon's server:
`POST /api/slack/interactions` (the buttons) and `POST /api/slack/commands` (`/incident`).

Both verify Slack's signature with the signing secret of an app-mode sink
(alerting/slack/signature.py). A click is answered at once, as Slack wants within 3 s; the
action runs after the answer, and its outcome reaches the clicking user through the payload's
`response_url` and every app-mode sink's parent message is edited to the new state."""

import asyncio
import json
import sqlite3
from collections.abc import Coroutine
from typing import Any, Protocol
from urllib.parse import parse_qs

import aiohttp
import structlog
from aiohttp import web

from alerting.base import DeliveryError, Sink
from alerting.slack import SlackSink
from alerting.slack.cockpit import ACKNOWLEDGE, ROLLBACK, SNOOZE
from alerting.slack.message import slack_escape
from alerting.slack.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_problem
from monitor import slack_actions
from monitor.config import Config
from monitor.slack_actions import SlackActionsView, SlackUser, UnknownIncident

log = structlog.get_logger("monitor.slack")

RESPONSE_TIMEOUT = 10.0
_COMMAND_HELP = "Usage: /incident list | /incident status ID | /incident ack ID"


class SlackDaemonView(SlackActionsView, Protocol):
    config: Config
    http: aiohttp.ClientSession
    sinks: dict[str, Sink]
    """The configured sinks (on a standby too)."""


class SlackEndpoints:
    def __init__(self, daemon: SlackDaemonView) -> None:
        self.daemon = daemon
        self._tasks: set[asyncio.Task[None]] = set()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/slack/interactions", self.interactions)
        app.router.add_post("/api/slack/commands", self.commands)
        app.on_shutdown.append(self._finish)

    def app_sinks(self) -> list[SlackSink]:
        sinks = self.daemon.sinks.values()
        return [sink for sink in sinks if isinstance(sink, SlackSink) and sink.signing_secret]

    async def interactions(self, request: web.Request) -> web.Response:
        form = await self._verified_form(request)
        try:
            payload = json.loads(form.get("payload", ""))
            action = payload["actions"][0]
            user = _user(payload["user"])
            action_id, value = str(action["action_id"]), str(action.get("value", ""))
            response_url = str(payload["response_url"])
        except (ValueError, KeyError, IndexError, TypeError):
            return web.json_response({"error": "not a block_actions payload"}, status=400)
        if action_id not in (ACKNOWLEDGE, SNOOZE, ROLLBACK):
            return web.Response(status=200)
        self._after_answer(self._click(action_id, value, user, response_url))
        return web.Response(status=200)

    async def commands(self, request: web.Request) -> web.Response:
        form = await self._verified_form(request)
        words = form.get("text", "").split()
        user = SlackUser(form.get("user_id", "?"), form.get("user_name", "?"))
        verb, argument = (words[0].lower() if words else ""), (words[1] if len(words) > 1 else "")
        try:
            if verb == "list":
                text = await slack_actions.listing(self.daemon)
            elif verb == "status" and argument:
                text = slack_actions.describe(await slack_actions.find(self.daemon, argument), self.daemon.clock)
            elif verb == "ack" and argument:
                incident = await slack_actions.find(self.daemon, argument)
                text = await slack_actions.acknowledge(self.daemon, incident, user)
                self._after_answer(self._show(incident.id))
            else:
                text = _COMMAND_HELP
        except UnknownIncident as exc:
            text = str(exc)
        return web.json_response({"response_type": "ephemeral", "text": slack_escape(text)})

    def _after_answer(self, work: Coroutine[Any, Any, None]) -> None:
        """Slack wants its answer within 3 s: what talks to Slack or a vendor runs after it."""
        task = asyncio.create_task(work, name="slack:after-answer")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _verified_form(self, request: web.Request) -> dict[str, str]:
        sinks = self.app_sinks()
        if not sinks:
            raise web.HTTPNotFound(
                text=json.dumps({"error": "no slack sink in app mode has signing_secret_env"}),
                content_type="application/json",
            )
        body = await request.read()
        secrets = [sink.signing_secret or "" for sink in sinks]
        problem = signature_problem(
            secrets, request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER), body,
            self.daemon.clock.now().timestamp(),
        )
        if problem is not None:
            log.warning("slack.request_refused", reason=problem)
            raise web.HTTPUnauthorized(text=json.dumps({"error": problem}), content_type="application/json")
        return {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}

    async def _click(self, action_id: str, value: str, user: SlackUser, response_url: str) -> None:
        raw_id, _, deployment = value.partition(":")
        try:
            incident = await slack_actions.find(self.daemon, raw_id)
            if action_id == ACKNOWLEDGE:
                text = await slack_actions.acknowledge(self.daemon, incident, user)
            elif action_id == SNOOZE:
                text = await slack_actions.snooze(self.daemon, incident, user)
            else:
                text = await slack_actions.roll_back(self.daemon, incident, deployment, user)
            await self._show(incident.id)
        except UnknownIncident as exc:
            text = str(exc)
        except Exception:  # a bug here must still answer the person who clicked
            log.exception("slack.action_failed", action=action_id, value=value)
            text = "The action failed inside health-monitor; see its log."
        log.info("slack.action", action=action_id, user=user.by, outcome=text)
        await self._respond(response_url, text)

    async def _show(self, incident_id: int) -> None:
        """Every app-mode parent message of the incident shows its state now."""
        incident = await self.daemon.store.get_incident(incident_id)
        if incident is None:
            return
        for sink in self.app_sinks():
            try:
                await sink.show(incident, self.daemon.config.monitor.name)
            except (DeliveryError, sqlite3.Error) as exc:  # the action is done; its answer must still go out
                log.warning("slack.parent_not_updated", sink=sink.name, incident=incident_id, error=str(exc))

    async def _respond(self, response_url: str, text: str) -> None:
        message = {"response_type": "ephemeral", "replace_original": False, "text": slack_escape(text)}
        try:
            async with self.daemon.http.post(
                response_url, json=message, timeout=aiohttp.ClientTimeout(total=RESPONSE_TIMEOUT)
            ) as response:
                if response.status >= 300:
                    log.warning("slack.response_refused", status=response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack.response_unreachable", error=type(exc).__name__)

    async def _finish(self, _: web.Application) -> None:
        """At shutdown, let the clicks under way answer."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=RESPONSE_TIMEOUT)


def _user(raw: dict[str, Any]) -> SlackUser:
    return SlackUser(str(raw["id"]), str(raw.get("username") or raw.get("name") or raw["id"]))


def add_slack_routes(app: web.Application, daemon: SlackDaemonView) -> SlackEndpoints:
    endpoints = SlackEndpoints(daemon)
    endpoints.routes(app)
    return endpoints
