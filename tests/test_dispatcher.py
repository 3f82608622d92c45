"""Delivery: routing by severity, retries that honour Retry-After, no retry of a rejected
message, and one dead sink never delaying another."""

import asyncio

import pytest

from alerting.base import NotificationKind, SinkContext
from alerting.dispatcher import Dispatcher
from alerting.slack import SlackSink
from monitor.clock import SystemClock
from monitor.metrics import MonitorMetrics
from monitor.model import Severity
from tests.alerting_helpers import Receiver, notification


class RecordingSleep:
    """Stands in for asyncio.sleep between retries: records the wait, returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
async def make_slack(serve, http_session, monkeypatch):
    async def make(receiver: Receiver, name: str = "slack-oncall", **keys: object) -> SlackSink:
        server = await serve(receiver.app())
        variable = f"TEST_WEBHOOK_{name.upper().replace('-', '_')}"
        monkeypatch.setenv(variable, f"http://127.0.0.1:{server.port}/hook")
        config = SlackSink.Config.model_validate({"type": "slack", "webhook_url_env": variable, **keys})
        return SlackSink(name, config, SinkContext(http_session, SystemClock()))

    return make


def sample(metrics: MonitorMetrics, sink: str, result: str) -> float:
    labels = {"sink": sink, "result": result}
    return metrics.registry.get_sample_value("health_monitor_notifications_total", labels) or 0


async def test_429_with_retry_after_is_waited_out_and_delivered_once(make_slack) -> None:
    receiver = Receiver(script=[(429, {"Retry-After": "1"})])
    sink = await make_slack(receiver)
    metrics, sleep = MonitorMetrics(), RecordingSleep()
    dispatcher = Dispatcher({"slack-oncall": sink}, metrics, SystemClock(), sleep=sleep)
    dispatcher.submit(notification())
    await dispatcher.drain(timeout=10)
    assert sleep.waits == [1.0]
    assert len(receiver.received) == 1
    assert receiver.attempts == 2
    assert (sample(metrics, "slack-oncall", "failed"), sample(metrics, "slack-oncall", "sent")) == (1, 1)
    assert metrics.registry.get_sample_value("health_monitor_notifications_pending") == 0


async def test_server_errors_are_retried_with_growing_backoff(make_slack) -> None:
    receiver = Receiver(script=[(500, {}), (502, {}), (503, {})])
    sink = await make_slack(receiver)
    sleep = RecordingSleep()
    dispatcher = Dispatcher({"slack-oncall": sink}, MonitorMetrics(), SystemClock(), sleep=sleep)
    dispatcher.submit(notification())
    await dispatcher.drain(timeout=10)
    assert len(receiver.received) == 1
    assert len(sleep.waits) == 3
    assert sleep.waits[0] >= 1.0 and sleep.waits[2] >= 4.0


async def test_a_rejected_message_is_not_retried_and_counted_dead(make_slack) -> None:
    receiver = Receiver(script=[(400, {})])
    sink = await make_slack(receiver)
    metrics = MonitorMetrics()
    dispatcher = Dispatcher({"slack-oncall": sink}, metrics, SystemClock(), sleep=RecordingSleep())
    dispatcher.submit(notification())
    await dispatcher.drain(timeout=10)
    assert receiver.attempts == 1
    assert sample(metrics, "slack-oncall", "dead") == 1


async def test_gives_up_after_the_maximum_age(make_slack) -> None:
    receiver = Receiver(always_fail=True)
    sink = await make_slack(receiver)
    metrics = MonitorMetrics()
    dispatcher = Dispatcher({"slack-oncall": sink}, metrics, SystemClock(), max_age=0.3, sleep=RecordingSleep())
    dispatcher.submit(notification())
    await dispatcher.drain(timeout=10)
    assert sample(metrics, "slack-oncall", "dead") == 1
    assert receiver.received == []


async def test_min_severity_routes_p3_away_from_a_p2_sink(make_slack) -> None:
    everyone, leads = Receiver(), Receiver()
    sinks = {
        "everyone": await make_slack(everyone, "everyone"),
        "leads": await make_slack(leads, "leads", min_severity="P2"),
    }
    dispatcher = Dispatcher(sinks, MonitorMetrics(), SystemClock(), sleep=RecordingSleep())
    dispatcher.submit(notification(severity=Severity.P3))
    dispatcher.submit(notification(severity=Severity.P1))
    await dispatcher.drain(timeout=10)
    assert [p["text"].splitlines()[1] for p in everyone.received] == ["Severity: P3", "Severity: P1"]
    assert [p["text"].splitlines()[1] for p in leads.received] == ["Severity: P1"]


async def test_send_resolved_false_skips_resolutions(make_slack) -> None:
    receiver = Receiver()
    sink = await make_slack(receiver, send_resolved=False)
    dispatcher = Dispatcher({"slack-oncall": sink}, MonitorMetrics(), SystemClock(), sleep=RecordingSleep())
    dispatcher.submit(notification(NotificationKind.RESOLUTION))
    await dispatcher.drain(timeout=10)
    assert receiver.attempts == 0


async def test_a_hanging_sink_does_not_delay_another(make_slack) -> None:
    stuck, healthy = Receiver(hang=True), Receiver()
    sinks = {
        "stuck": await make_slack(stuck, "stuck", timeout=30),
        "healthy": await make_slack(healthy, "healthy"),
    }
    dispatcher = Dispatcher(sinks, MonitorMetrics(), SystemClock(), sleep=RecordingSleep())
    dispatcher.submit(notification())
    deadline = asyncio.get_running_loop().time() + 5
    while not healthy.received and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert len(healthy.received) == 1
    assert stuck.attempts == 1 and stuck.received == []
    stuck.released.set()
    await dispatcher.drain(timeout=0.1)
