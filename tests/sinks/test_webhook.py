"""Generic webhook: the documented JSON body, its HMAC signature and idempotency key, checked
by a local receiver that verifies them as a user's endpoint would; answers and secrets."""

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from alerting.base import DeliveryError, NotificationKind, SinkContext
from alerting.http import parse_retry_after
from alerting.webhook import WebhookSink, build_body
from monitor.model import Severity
from tests.alerting_helpers import incident, notification
from tests.fakes import START
from tests.net import free_port

SECRET = "whsec-signing-key-never-shown"
PATH = "/hooks/T0-private-token-9f8e7d"


@dataclass
class VerifyingReceiver:
    """A user's endpoint: rejects any body whose signature does not verify, else keeps it."""

    secret: str | None = SECRET
    answer: tuple[int, dict[str, str], str] | None = None
    received: list[tuple[dict[str, Any], web.Request]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(PATH, self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        if self.answer:
            status, headers, text = self.answer
            return web.Response(status=status, headers=headers, text=text)
        raw = await request.read()
        if self.secret is not None:
            expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, request.headers.get("X-Health-Monitor-Signature", "")):
                return web.Response(status=401, text="bad signature")
        self.received.append((await request.json(), request))
        return web.Response(status=204)


@pytest.fixture
async def endpoint(serve, monkeypatch):
    async def start(receiver: VerifyingReceiver) -> None:
        server = await serve(receiver.app())
        monkeypatch.setenv("TEST_WEBHOOK_URL", f"http://127.0.0.1:{server.port}{PATH}")

    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    return start


def webhook_sink(context: SinkContext, **keys: Any) -> WebhookSink:
    raw = {"type": "webhook", "url_env": "TEST_WEBHOOK_URL", "secret_env": "TEST_WEBHOOK_SECRET"}
    return WebhookSink("ops-webhook", WebhookSink.Config.model_validate(raw | keys), context)


async def test_posts_the_documented_body_signed_and_with_an_idempotency_key(endpoint, sink_context) -> None:
    receiver = VerifyingReceiver()
    await endpoint(receiver)
    await webhook_sink(sink_context).send(notification())
    ((body, request),) = receiver.received
    assert request.headers["Idempotency-Key"] == "7:initial"
    assert request.headers["Content-Type"] == "application/json"
    assert body["version"] == "1"
    assert (body["id"], body["kind"], body["monitor"]) == ("7:initial", "initial", "test-monitor")
    assert body["created_at"] == "2026-11-26T19:00:00Z"
    assert (body["previous_severity"], body["escalation_level"], body["escalation_role"]) == (None, None, None)
    assert (body["status"], body["progress"], body["group"]) == (None, [], [])
    assert body["incident"] == {
        "id": 7,
        "key": "api/down",
        "check": "api",
        "code": "down",
        "severity": "P1",
        "state": "open",
        "opened_at": "2026-11-26T19:00:00Z",
        "resolved_at": None,
        "summary": "GET http://127.0.0.1/health failed: HTTP 503, expected 2xx",
        "impact": "customers cannot load the dashboard",
        "runbook": "Complete Outage",
        "evidence": ["failure: status", "body: <!channel> & <https://evil.example|click me> @here"],
        "resolution": None,
        "acknowledged_at": None,
        "acknowledged_by": None,
    }
    assert body["text"].startswith("🚨 INCIDENT DETECTED 🚨\nSeverity: P1\n")


async def test_resolution_carries_its_end_and_resolution(endpoint, sink_context) -> None:
    receiver = VerifyingReceiver()
    await endpoint(receiver)
    await webhook_sink(sink_context).send(notification(NotificationKind.RESOLUTION))
    ((body, request),) = receiver.received
    assert request.headers["Idempotency-Key"] == "7:resolution"
    assert body["kind"] == "resolution"
    assert body["incident"]["state"] == "resolved"
    assert body["incident"]["resolved_at"] == "2026-11-26T19:07:30Z"
    assert body["incident"]["resolution"] == "check passing again (2 consecutive good runs)"


def test_a_grouped_message_lists_every_incident() -> None:
    group = (incident(Severity.P2, id=3, check="db"), incident(Severity.P3, id=4, check="xero"))
    grouped = notification().model_copy(update={"kind": NotificationKind.GROUPED, "group": group})
    body = build_body(grouped)
    assert body.kind == "grouped"
    assert [(item.id, item.key, item.severity) for item in body.group] == [(3, "db/down", "P2"), (4, "xero/down", "P3")]


async def test_without_a_secret_nothing_is_signed(endpoint, sink_context) -> None:
    receiver = VerifyingReceiver(secret=None)
    await endpoint(receiver)
    config = {"type": "webhook", "url_env": "TEST_WEBHOOK_URL"}
    await WebhookSink("plain", WebhookSink.Config.model_validate(config), sink_context).send(notification())
    ((_, request),) = receiver.received
    assert "X-Health-Monitor-Signature" not in request.headers


async def test_a_receiver_with_another_secret_refuses_the_body(endpoint, sink_context) -> None:
    await endpoint(VerifyingReceiver(secret="some-other-secret"))
    with pytest.raises(DeliveryError) as failure:
        await webhook_sink(sink_context).send(notification())
    assert not failure.value.retryable
    assert "401" in str(failure.value)


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [
        (429, {"Retry-After": "7"}, True, 7.0),
        (503, {}, True, None),
        (500, {}, True, None),
        (404, {}, False, None),
        (410, {}, False, None),
    ],
)
async def test_answers_decide_whether_a_retry_can_help(
    endpoint, sink_context, status: int, headers: dict[str, str], retryable: bool, retry_after: float | None
) -> None:
    await endpoint(VerifyingReceiver(answer=(status, headers, f"echo {PATH} {SECRET}")))
    with pytest.raises(DeliveryError) as failure:
        await webhook_sink(sink_context).send(notification())
    assert failure.value.retryable is retryable
    assert failure.value.retry_after == retry_after
    assert str(status) in str(failure.value)
    assert PATH not in str(failure.value) and SECRET not in str(failure.value)


async def test_an_unreachable_url_is_retryable_and_never_shown(sink_context, monkeypatch) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}{PATH}")
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    with pytest.raises(DeliveryError) as failure:
        await webhook_sink(sink_context).send(notification())
    assert failure.value.retryable
    assert PATH not in str(failure.value) and "unreachable" in str(failure.value)


def test_retry_after_may_be_seconds_or_an_http_date() -> None:
    later = START + timedelta(seconds=90)
    assert parse_retry_after("120", START) == 120.0
    assert parse_retry_after(later.strftime("%a, %d %b %Y %H:%M:%S GMT"), START) == 90.0
    assert parse_retry_after("soon", START) is None
    assert parse_retry_after(None, START) is None
