"""A local stand-in for Slack's Web API (reached through the sink's `api_url`) and for the
`response_url` of interaction payloads: it records every call and answers like Slack."""

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

BOT_TOKEN = "xoxb-test-0123456789-secret"
SIGNING_SECRET = "signing-secret-0123456789abcdef"
CHANNEL = "C0123456789"


@dataclass
class FakeSlack:
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    script: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    """Answers given before the normal ones: (HTTP status, JSON body, headers)."""
    fail_updates: list[str] = field(default_factory=list)
    """`ok: false` errors for the next chat.update calls."""
    responses: list[dict[str, Any]] = field(default_factory=list)
    """What was posted to the response_url."""
    _stamps: itertools.count = field(default_factory=lambda: itertools.count(1))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self.method)
        app.router.add_post("/response", self.response)
        return app

    async def method(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        body = await request.json()
        self.calls.append((name, body))
        self.authorizations.append(request.headers.get("Authorization", ""))
        if self.script:
            status, answer, headers = self.script.pop(0)
            return web.json_response(answer, status=status, headers=headers)
        if name == "chat.update" and self.fail_updates:
            return web.json_response({"ok": False, "error": self.fail_updates.pop(0)})
        if name == "chat.postMessage":
            stamp = f"1700000000.{next(self._stamps):06d}"
            return web.json_response({"ok": True, "channel": body["channel"], "ts": stamp})
        return web.json_response({"ok": True, "channel": body["channel"], "ts": body.get("ts")})

    async def response(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.Response(text="ok")

    def posts(self) -> list[dict[str, Any]]:
        return [body for method, body in self.calls if method == "chat.postMessage"]

    def parents(self) -> list[dict[str, Any]]:
        return [body for body in self.posts() if "thread_ts" not in body and "attachments" in body]

    def replies(self) -> list[dict[str, Any]]:
        return [body for body in self.posts() if "thread_ts" in body]

    def updates(self) -> list[dict[str, Any]]:
        return [body for method, body in self.calls if method == "chat.update"]


def every_text(value: object) -> list[str]:
    """Every `text` string anywhere in a Slack payload (top level, blocks, fields, buttons, dialogs)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                found.append(item)
            else:
                found += every_text(item)
    elif isinstance(value, list):
        for item in value:
            found += every_text(item)
    return found


def parent_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    return message["attachments"][0]["blocks"]


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The parent's buttons by action_id."""
    actions = [block for block in parent_blocks(message) if block["type"] == "actions"]
    return {element["action_id"]: element for block in actions for element in block["elements"]}


def signed(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends with `body`, signed now (or at `timestamp`)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def click_body(action_id: str, value: str, response_url: str, user: tuple[str, str] = ("U0ALICE", "alice")) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user[0], "username": user[1], "name": user[1]},
        "channel": {"id": CHANNEL},
        "container": {"type": "message", "channel_id": CHANNEL, "message_ts": "1700000000.000001"},
        "response_url": response_url,
        "actions": [{"type": "button", "action_id": action_id, "value": value, "block_id": "incident"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def command_body(text: str, response_url: str, user: tuple[str, str] = ("U0BOB", "bob")) -> bytes:
    return urlencode({
        "command": "/incident", "text": text, "user_id": user[0], "user_name": user[1],
        "channel_id": CHANNEL, "response_url": response_url,
    }).encode()
