"""Delivery: routing by severity, retries that honour Retry-After, no retry of a rejected
message, and one dead sink never delaying another."""

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from alerting.base import NotificationKind, SinkContext
from alerting.slack import SlackSink
from monitor.clock import Clock, SystemClock
from monitor.dispatcher import CLAIM_POLL_SECONDS, Dispatcher, Outgoing
from monitor.metrics import MonitorMetrics
from monitor.model import Severity
from monitor.sqlite_store import SqliteStore
from monitor.store import Claim, DeliveryState
from tests.alerting_helpers import Receiver, notification
from tests.fakes import FakeClock


class RecordingSleep:
    """Stands in for asyncio.sleep between retries: records the wait and moves the fake
    clock by it, returning at once."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.consume(seconds)
        await asyncio.sleep(0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(tmp_path / "state.db")
    yield store
    await store.close()


@pytest.fixture
def dispatch(store: SqliteStore, fake_clock: FakeClock):
    """A dispatcher on the fake clock, with its metrics and its recorded retry waits."""

    def make(sinks: dict[str, SlackSink]) -> tuple[Dispatcher, MonitorMetrics, RecordingSleep]:
        metrics, sleep = MonitorMetrics(), RecordingSleep(fake_clock)
        return Dispatcher(sinks, store, metrics, fake_clock, sleep=sleep), metrics, sleep

    return make


@pytest.fixture
async def make_slack(serve, http_session, monkeypatch):
    async def make(
        receiver: Receiver, name: str = "slack-oncall", clock: Clock | None = None, **keys: object
    ) -> SlackSink:
        server = await serve(receiver.app())
        variable = f"TEST_WEBHOOK_{name.upper().replace('-', '_')}"
        monkeypatch.setenv(variable, f"http://127.0.0.1:{server.port}/hook")
        config = SlackSink.Config.model_validate({"type": "slack", "webhook_url_env": variable, **keys})
        return SlackSink(name, config, SinkContext(http_session, clock or SystemClock()))

    return make


def sample(metrics: MonitorMetrics, sink: str, result: str) -> float:
    labels = {"sink": sink, "result": result}
    return metrics.registry.get_sample_value("health_monitor_notifications_total", labels) or 0


async def test_429_with_retry_after_is_waited_out_and_delivered_once(make_slack, dispatch) -> None:
    receiver = Receiver(script=[(429, {"Retry-After": "1"})])
    sink = await make_slack(receiver)
    dispatcher, metrics, sleep = dispatch({"slack-oncall": sink})
    await dispatcher.submit([Outgoing(notification())])
    await dispatcher.drain(timeout=10)
    assert sleep.waits == [1.0]
    assert len(receiver.received) == 1
    assert receiver.attempts == 2
    assert (sample(metrics, "slack-oncall", "failed"), sample(metrics, "slack-oncall", "sent")) == (1, 1)
    assert metrics.registry.get_sample_value("health_monitor_notifications_pending") == 0


async def test_server_errors_are_retried_with_growing_backoff(make_slack, dispatch) -> None:
    receiver = Receiver(script=[(500, {}), (502, {}), (503, {})])
    sink = await make_slack(receiver)
    dispatcher, _, sleep = dispatch({"slack-oncall": sink})
    await dispatcher.submit([Outgoing(notification())])
    await dispatcher.drain(timeout=10)
    assert len(receiver.received) == 1
    assert len(sleep.waits) == 3
    assert sleep.waits[0] >= 1.0 and sleep.waits[2] >= 4.0


async def test_a_webhook_that_hangs_times_out_and_is_retried(make_slack, dispatch) -> None:
    receiver = Receiver(hang_first=1)
    sink = await make_slack(receiver, timeout="300ms")
    dispatcher, metrics, sleep = dispatch({"slack-oncall": sink})
    await dispatcher.submit([Outgoing(notification())])
    await dispatcher.drain(timeout=10)
    receiver.released.set()
    assert receiver.attempts == 2 and len(receiver.received) == 1
    assert len(sleep.waits) == 1
    assert (sample(metrics, "slack-oncall", "failed"), sample(metrics, "slack-oncall", "sent")) == (1, 1)


async def test_a_rejected_message_is_not_retried_and_counted_dead(make_slack, dispatch) -> None:
    receiver = Receiver(script=[(400, {})])
    sink = await make_slack(receiver)
    dispatcher, metrics, _ = dispatch({"slack-oncall": sink})
    await dispatcher.submit([Outgoing(notification())])
    await dispatcher.drain(timeout=10)
    assert receiver.attempts == 1
    assert sample(metrics, "slack-oncall", "dead") == 1


async def test_gives_up_after_the_maximum_age_and_keeps_the_dead_letter(
    make_slack, dispatch, fake_clock, store
) -> None:
    receiver = Receiver(always_fail=True)
    sink = await make_slack(receiver, clock=fake_clock, max_age="5m")
    dispatcher, metrics, sleep = dispatch({"slack-oncall": sink})
    await dispatcher.submit([Outgoing(notification())])
    await dispatcher.drain(timeout=10)
    assert sample(metrics, "slack-oncall", "dead") == 1
    assert receiver.received == []
    assert 300 <= sum(sleep.waits) < 360
    (delivery,) = await store.deliveries_for(7)
    assert (delivery.state, delivery.attempts) == ("dead", receiver.attempts)
    assert delivery.last_error == "Slack answered 500 error"


async def test_pending_deliveries_resume_after_a_restart_and_arrive_once(make_slack, dispatch, store) -> None:
    down = Receiver(always_fail=True)
    first, _, _ = dispatch({"slack-oncall": await make_slack(down)})
    await first.submit([Outgoing(notification())])
    await first.submit([Outgoing(notification())])  # the same notification again is recorded once
    await asyncio.sleep(0.1)
    await first.drain(timeout=0)
    assert [d.state for d in await store.pending_deliveries()] == ["pending"]

    up = Receiver()
    second, metrics, _ = dispatch({"slack-oncall": await make_slack(up)})
    await second.resume()
    await second.drain(timeout=10)
    assert len(up.received) == 1
    assert [d.state for d in await store.deliveries_for(7)] == ["sent"]
    assert metrics.registry.get_sample_value("health_monitor_notifications_pending") == 0


async def test_min_severity_routes_p3_away_from_a_p2_sink(make_slack, dispatch) -> None:
    everyone, leads = Receiver(), Receiver()
    sinks = {
        "everyone": await make_slack(everyone, "everyone"),
        "leads": await make_slack(leads, "leads", min_severity="P2"),
    }
    dispatcher, _, _ = dispatch(sinks)
    p3, p1 = notification(severity=Severity.P3, id=8), notification(severity=Severity.P1)
    await dispatcher.submit([Outgoing(p3), Outgoing(p1)])
    await dispatcher.drain(timeout=10)
    # most severe first
    assert [p["text"].splitlines()[1] for p in everyone.received] == ["Severity: P1", "Severity: P3"]
    assert [p["text"].splitlines()[1] for p in leads.received] == ["Severity: P1"]


async def test_send_resolved_false_skips_resolutions(make_slack, dispatch) -> None:
    receiver = Receiver()
    sink = await make_slack(receiver, send_resolved=False)
    dispatcher, _, _ = dispatch({"slack-oncall": sink})
    await dispatcher.submit([Outgoing(notification(NotificationKind.RESOLUTION))])
    await dispatcher.drain(timeout=10)
    assert receiver.attempts == 0


async def test_a_hanging_sink_does_not_delay_another(make_slack, dispatch) -> None:
    stuck, healthy = Receiver(hang=True), Receiver()
    sinks = {
        "stuck": await make_slack(stuck, "stuck", timeout=30),
        "healthy": await make_slack(healthy, "healthy"),
    }
    dispatcher, _, _ = dispatch(sinks)
    await dispatcher.submit([Outgoing(notification())])
    deadline = asyncio.get_running_loop().time() + 5
    while not healthy.received and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert len(healthy.received) == 1
    assert stuck.attempts == 1 and stuck.received == []
    stuck.released.set()
    await dispatcher.drain(timeout=0.1)


class ScriptedClaims(SqliteStore):
    """A store whose claims answer from a script (another replica holding the row, then
    finishing it), then as SQLite does; remembers the tokens its finishes carried."""

    def __init__(self, file: object, answers: list[Claim]) -> None:
        super().__init__(file)  # type: ignore[arg-type]
        self.answers = answers
        self.finished_with: list[str | None] = []

    async def claim(self, notification_id: str, sink: str, holder: str, seconds: float,
                    epoch: int | None = None, token: str | None = None) -> Claim:
        return self.answers.pop(0) if self.answers else Claim("claimed", "t-1")

    async def finish(self, notification_id: str, sink: str, state: DeliveryState, at: datetime,
                     error: str | None = None, token: str | None = None) -> None:
        self.finished_with.append(token)
        await super().finish(notification_id, sink, state, at, error, token)


async def test_a_row_another_replica_holds_is_sent_once_its_claim_runs_out_with_the_new_token(
    make_slack, fake_clock: FakeClock, tmp_path: Path
) -> None:
    opened = await SqliteStore.open(tmp_path / "state.db")
    store = ScriptedClaims(opened.file, [Claim("busy"), Claim("busy")])
    receiver = Receiver()
    sleep = RecordingSleep(fake_clock)
    dispatcher = Dispatcher({"slack-oncall": await make_slack(receiver)}, store, MonitorMetrics(), fake_clock,
                            sleep=sleep)
    await dispatcher.submit([Outgoing(notification())])
    await dispatcher.drain(timeout=10)
    assert sleep.waits == [CLAIM_POLL_SECONDS, CLAIM_POLL_SECONDS]
    assert len(receiver.received) == 1
    assert store.finished_with == ["t-1"]
    await opened.close()


async def test_a_row_another_replica_finished_is_not_sent(make_slack, fake_clock: FakeClock, tmp_path: Path) -> None:
    opened = await SqliteStore.open(tmp_path / "state.db")
    store = ScriptedClaims(opened.file, [Claim("busy"), Claim("finished")])
    receiver = Receiver()
    dispatcher = Dispatcher({"slack-oncall": await make_slack(receiver)}, store, MonitorMetrics(), fake_clock,
                            sleep=RecordingSleep(fake_clock))
    await dispatcher.submit([Outgoing(notification())])
    await dispatcher.drain(timeout=10)
    assert receiver.received == [] and store.finished_with == []
    await opened.close()
