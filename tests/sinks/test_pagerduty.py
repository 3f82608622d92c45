"""PagerDuty Events API v2 against a local receiver that validates events the way the
documented API does (never events.pagerduty.com): trigger, resolve and acknowledge under
one dedup_key, severity mapping, limits, answers, and a routing key that is never shown."""

from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from alerting.base import DeliveryError, NotificationKind, SinkContext
from alerting.pagerduty import MAX_SUMMARY_CHARS, PagerDutySink, build_event
from monitor.model import Severity
from tests.alerting_helpers import incident, notification

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"  # 32 characters, as PagerDuty's are
SEVERITIES = {"critical", "error", "warning", "info"}


def problems(event: dict[str, Any]) -> list[str]:
    """What PagerDuty's Events API v2 would reject in an event."""
    found = []
    if len(event.get("routing_key", "")) != 32:
        found.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    if event.get("event_action") not in {"trigger", "acknowledge", "resolve"}:
        found.append("'event_action' is invalid")
    if not 0 < len(event.get("dedup_key", "")) <= 255:
        found.append("'dedup_key' is missing or longer than 255 characters")
    if event.get("event_action") == "trigger":
        payload = event.get("payload", {})
        if not 0 < len(payload.get("summary", "")) <= 1024:
            found.append("'payload.summary' is missing or longer than 1024 characters")
        if not payload.get("source"):
            found.append("'payload.source' is missing")
        if payload.get("severity") not in SEVERITIES:
            found.append("'payload.severity' is invalid")
    return found


@dataclass
class EventsApi:
    """A local stand-in for /v2/enqueue: 400 for an invalid event, else 202."""

    answer: tuple[int, dict[str, str], str] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/enqueue", self.enqueue)
        return app

    async def enqueue(self, request: web.Request) -> web.Response:
        if self.answer:
            status, headers, text = self.answer
            return web.Response(status=status, headers=headers, text=text)
        event = await request.json()
        if errors := problems(event):
            return web.json_response(
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors}, status=400
            )
        self.events.append(event)
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": event["dedup_key"]}, status=202
        )


@pytest.fixture
async def events_api(serve, monkeypatch):
    async def start(api: EventsApi) -> str:
        server = await serve(api.app())
        return f"http://127.0.0.1:{server.port}/v2/enqueue"

    monkeypatch.setenv("TEST_PAGERDUTY_KEY", ROUTING_KEY)
    return start


def pagerduty_sink(context: SinkContext, url: str, **keys: Any) -> PagerDutySink:
    raw = {"type": "pagerduty", "routing_key_env": "TEST_PAGERDUTY_KEY", "url": url}
    return PagerDutySink("pagerduty", PagerDutySink.Config.model_validate(raw | keys), context)


async def test_an_incident_triggers_then_resolves_one_alert(events_api, sink_context) -> None:
    api = EventsApi()
    sink = pagerduty_sink(sink_context, await events_api(api))
    await sink.send(notification())
    await sink.send(notification(NotificationKind.RESOLUTION))
    trigger, resolve = api.events
    assert trigger["routing_key"] == ROUTING_KEY
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == "health-monitor/test-monitor/7"
    assert trigger["payload"] == {
        "summary": "[P1] api on test-monitor: GET http://127.0.0.1/health failed: HTTP 503, expected 2xx",
        "source": "test-monitor",
        "severity": "critical",
        "timestamp": "2026-11-26T19:00:00Z",
        "component": "api",
        "class": "down",
        "custom_details": {
            "incident": "#7 api/down",
            "impact": "customers cannot load the dashboard",
            "evidence": ["failure: status", "body: <!channel> & <https://evil.example|click me> @here"],
            "runbook": "Complete Outage",
            "runbook_actions": trigger["payload"]["custom_details"]["runbook_actions"],
        },
    }
    assert trigger["payload"]["custom_details"]["runbook_actions"][0] == "Check the hosting provider's status page"
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": trigger["dedup_key"]}


async def test_acknowledge_uses_the_same_dedup_key(events_api, sink_context) -> None:
    api = EventsApi()
    sink = pagerduty_sink(sink_context, await events_api(api))
    await sink.send(notification())
    await sink.acknowledge(incident(), monitor="test-monitor")
    trigger, ack = api.events
    assert ack == {"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": trigger["dedup_key"]}


async def test_an_acknowledged_notification_acknowledges(events_api, sink_context) -> None:
    api = EventsApi()
    sink = pagerduty_sink(sink_context, await events_api(api))
    await sink.send(notification(NotificationKind.ACKNOWLEDGED, acknowledged_by="alice"))
    (ack,) = api.events
    assert ack == {
        "routing_key": ROUTING_KEY,
        "event_action": "acknowledge",
        "dedup_key": "health-monitor/test-monitor/7",
    }


async def test_a_grouped_message_triggers_each_admitted_incident(events_api, sink_context) -> None:
    api = EventsApi()
    sink = pagerduty_sink(sink_context, await events_api(api), min_severity="P2")
    group = (incident(Severity.P2, id=3, check="db"), incident(Severity.P3, id=4), incident(Severity.P2, id=5))
    await sink.send(notification().model_copy(update={"kind": NotificationKind.GROUPED, "group": group}))
    assert [(event["event_action"], event["dedup_key"]) for event in api.events] == [
        ("trigger", "health-monitor/test-monitor/3"),
        ("trigger", "health-monitor/test-monitor/5"),
    ]


async def test_a_severity_rise_triggers_again_with_the_new_severity(events_api, sink_context) -> None:
    api = EventsApi()
    sink = pagerduty_sink(sink_context, await events_api(api))
    await sink.send(notification(severity=Severity.P3))
    raised = notification(NotificationKind.SEVERITY_RAISED, severity=Severity.P1)
    await sink.send(raised.model_copy(update={"previous_severity": Severity.P3}))
    first, second = api.events
    assert [first["event_action"], second["event_action"]] == ["trigger", "trigger"]
    assert first["dedup_key"] == second["dedup_key"]
    assert [first["payload"]["severity"], second["payload"]["severity"]] == ["warning", "critical"]


@pytest.mark.parametrize(
    ("severity", "expected"),
    [(Severity.P1, "critical"), (Severity.P2, "error"), (Severity.P3, "warning"), (Severity.P4, "info")],
)
def test_severities_map_to_pagerduty_severities(severity: Severity, expected: str) -> None:
    event = build_event("trigger", incident(severity=severity), "prod", ROUTING_KEY)
    assert event.payload is not None and event.payload.severity == expected


async def test_a_huge_summary_and_monitor_name_stay_within_pagerduty_limits(events_api, sink_context) -> None:
    api = EventsApi()
    sink = pagerduty_sink(sink_context, await events_api(api))
    huge = notification(summary="x" * 5000).model_copy(update={"monitor": "m" * 300})
    await sink.send(huge)
    (event,) = api.events
    assert len(event["payload"]["summary"]) == MAX_SUMMARY_CHARS
    assert event["payload"]["summary"].endswith("…")
    assert len(event["dedup_key"]) <= 255


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [(429, {"Retry-After": "30"}, True, 30.0), (500, {}, True, None), (503, {}, True, None), (400, {}, False, None)],
)
async def test_answers_decide_whether_a_retry_can_help(
    events_api, sink_context, status: int, headers: dict[str, str], retryable: bool, retry_after: float | None
) -> None:
    echo = f'{{"status": "invalid event", "errors": ["routing_key {ROUTING_KEY} unknown"]}}'
    sink = pagerduty_sink(sink_context, await events_api(EventsApi(answer=(status, headers, echo))))
    with pytest.raises(DeliveryError) as failure:
        await sink.send(notification())
    assert failure.value.retryable is retryable
    assert failure.value.retry_after == retry_after
    assert str(status) in str(failure.value)
    assert ROUTING_KEY not in str(failure.value)
