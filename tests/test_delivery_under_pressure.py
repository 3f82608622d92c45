"""Delivery under pressure: a state store that cannot write (issue 10, failure 1), a flood of
low-severity notifications ahead of a P1 (failure 2), storms, and a full queue."""

from pathlib import Path

import pytest
import structlog

from alerting.base import Notification, NotificationKind, SinkConfig, SinkContext
from alerting.messages import render
from alerting.slack import SlackSink
from monitor.dispatcher import Dispatcher, Outgoing, grouped
from monitor.metrics import MonitorMetrics
from monitor.model import Severity
from monitor.sqlite_store import SqliteStore
from monitor.store import DeliveryState, OutboxEntry
from monitor.store_guard import GuardedStore
from tests.alerting_helpers import Receiver, notification
from tests.fakes import FakeClock
from tests.incident_harness import RecordingSink
from tests.net import wait_until
from tests.store_doubles import DISK_FULL, FillableStore


def recording(name: str, clock: FakeClock, **config: object) -> RecordingSink:
    return RecordingSink(name, SinkConfig(type="recording", **config), SinkContext(None, clock))  # type: ignore[arg-type]


def states(store: SqliteStore) -> dict[str, DeliveryState]:
    rows = store.file._db.execute("SELECT notification_id || '@' || sink, state FROM outbox").fetchall()
    return dict(rows)


def alert(
    number: int, severity: Severity = Severity.P2, kind: NotificationKind = NotificationKind.INITIAL
) -> Notification:
    return notification(kind, id=number, check=f"check-{number}", severity=severity)


async def test_a_store_that_cannot_record_a_delivery_never_stops_a_sink(
    tmp_path: Path, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failure 1 of issue 10: store.finish() raised outside the worker's try and the sink's
    worker ended silently; the other notifications stayed queued until a restart."""
    store = await FillableStore.open(tmp_path / "state.db")
    metrics = MonitorMetrics()
    sink = recording("slack", fake_clock)
    dispatcher = Dispatcher({"slack": sink}, store, metrics, fake_clock)
    for number in range(1, 5):
        await dispatcher.submit([Outgoing(alert(number))])
    monkeypatch.setattr(FillableStore, "full", True)
    await dispatcher.drain(timeout=1)

    assert [r.notification.incident.id for r in sink.received] == [1, 2, 3, 4]


async def test_with_the_store_full_every_page_is_delivered_from_memory_and_recorded_once_it_has_room(
    tmp_path: Path, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = await FillableStore.open(tmp_path / "state.db")
    metrics = MonitorMetrics()
    store = GuardedStore(inner, metrics, fake_clock)
    slack, log = recording("slack", fake_clock), recording("log", fake_clock)
    dispatcher = Dispatcher({"slack": slack, "log": log}, store, metrics, fake_clock)
    monkeypatch.setattr(FillableStore, "full", True)
    for number in range(1, 5):
        await dispatcher.submit([Outgoing(alert(number))])
    await dispatcher.idle()

    assert len(slack.received) == len(log.received) == 4
    assert store.problem == DISK_FULL
    assert metrics.state_store_errors.labels(operation="enqueue")._value.get() >= 1
    assert states(inner) == {}

    monkeypatch.setattr(FillableStore, "full", False)
    await store.retry()

    assert store.problem is None
    assert set(states(inner).values()) == {"sent"} and len(states(inner)) == 8
    await dispatcher.drain(timeout=1)


async def test_a_p1_is_sent_before_a_thousand_queued_p3_resolutions(tmp_path: Path, fake_clock: FakeClock) -> None:
    """Failure 2 of issue 10: one FIFO per sink made a P1 wait behind 170 P3 notifications."""
    sink = recording("slack", fake_clock)
    store = await SqliteStore.open(tmp_path / "state.db")
    dispatcher = Dispatcher({"slack": sink}, store, MonitorMetrics(), fake_clock)
    resolutions = [Outgoing(alert(number, Severity.P3, NotificationKind.RESOLUTION)) for number in range(1, 1001)]
    await dispatcher.submit([*resolutions, Outgoing(alert(5000, Severity.P1))])
    await dispatcher.idle()

    first = sink.received[0].notification
    assert (first.kind, first.incident.id) == (NotificationKind.INITIAL, 5000)
    resolved = [incident.id for r in sink.received[1:] for incident in r.notification.group]
    assert sorted(resolved) == list(range(1, 1001))
    assert {r.notification.kind for r in sink.received[1:]} == {NotificationKind.RESOLUTION}
    await dispatcher.drain(timeout=1)


async def test_a_p1_reaches_a_rate_limited_slack_within_seconds_behind_thousands_of_p3(
    tmp_path: Path, fake_clock: FakeClock, serve, http_session, monkeypatch
) -> None:
    receiver = Receiver()
    server = await serve(receiver.app())
    monkeypatch.setenv("TEST_FLOOD_WEBHOOK", f"http://127.0.0.1:{server.port}/hook")
    config = SlackSink.Config.model_validate({"type": "slack", "webhook_url_env": "TEST_FLOOD_WEBHOOK"})
    slack = SlackSink("slack", config, SinkContext(http_session, fake_clock))
    store = await SqliteStore.open(tmp_path / "state.db")
    dispatcher = Dispatcher({"slack": slack}, store, MonitorMetrics(), fake_clock)
    for number in range(1, 3001):
        await dispatcher.submit([Outgoing(alert(number, Severity.P3, NotificationKind.STATUS_UPDATE))])
        await dispatcher.submit([Outgoing(alert(number, Severity.P3, NotificationKind.INITIAL))])
    await wait_until(lambda: receiver.received, "the first message to reach Slack")
    await dispatcher.submit([Outgoing(alert(9999, Severity.P1))])

    for _ in range(5):
        # Each second lets one message out: once its POST is done, Slack waits for the clock.
        await wait_until(lambda: fake_clock.sleeping, "the Slack sink to wait for its rate limit")
        await fake_clock.advance(1.0)
    await wait_until(lambda: len(receiver.received) >= 6, "the message released last")
    posted = [payload["text"] for payload in receiver.received]
    assert any("#9999" in text for text in posted), "the P1 did not reach Slack within 5 s"
    assert len(posted) <= 6
    await dispatcher.drain(timeout=0.1)


async def test_a_p1_storm_goes_out_as_grouped_messages_as_soon_as_the_sink_is_free(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    store = await SqliteStore.open(tmp_path / "state.db")
    sink = recording("slack", fake_clock)
    dispatcher = Dispatcher({"slack": sink}, store, MonitorMetrics(), fake_clock, group_at=2)
    await dispatcher.submit([Outgoing(alert(number, Severity.P1)) for number in range(1, 301)])
    await dispatcher.idle()

    messages = [r.notification for r in sink.received]
    assert len(messages) == 6, "300 separate posts, the last 5 minutes late at Slack's pace"
    assert {m.kind for m in messages} == {NotificationKind.GROUPED}
    assert render(messages[0]).title == "🚨 50 INCIDENTS DETECTED 🚨"
    announced = [i.id for m in messages for i in m.group]
    assert sorted(announced) == list(range(1, 301))
    assert set(states(store).values()) == {"sent"} and len(states(store)) == 300
    await dispatcher.drain(timeout=1)


async def test_a_full_queue_sheds_the_least_severe_and_records_it(tmp_path: Path, fake_clock: FakeClock) -> None:
    store = await SqliteStore.open(tmp_path / "state.db")
    metrics = MonitorMetrics()
    sink = recording("slack", fake_clock, max_queued=3)
    dispatcher = Dispatcher({"slack": sink}, store, metrics, fake_clock)
    severities = (Severity.P4, Severity.P3, Severity.P4, Severity.P1, Severity.P4)
    await dispatcher.submit([Outgoing(alert(number, severity)) for number, severity in enumerate(severities, 1)])
    await dispatcher.idle()

    assert [r.notification.incident.id for r in sink.received] == [4, 2, 1]
    assert states(store) == {
        "1:initial@slack": "sent", "2:initial@slack": "sent", "3:initial@slack": "shed",
        "4:initial@slack": "sent", "5:initial@slack": "shed",
    }
    assert metrics.notifications.labels(sink="slack", result="shed")._value.get() == 2
    assert metrics.notifications_pending._value.get() == 0
    with structlog.testing.capture_logs() as logged:
        await dispatcher.drain(timeout=1)
    assert not [entry for entry in logged if entry["event"] == "notifications.undelivered_at_shutdown"]


@pytest.mark.parametrize("kind", [NotificationKind.RESOLUTION, NotificationKind.STATUS_UPDATE])
def test_grouped_resolutions_and_updates_have_their_own_message(kind: NotificationKind) -> None:
    message = render(grouped([alert(number, Severity.P2, kind) for number in range(1, 4)]))

    headline = "✅ 3 INCIDENTS RESOLVED" if kind is NotificationKind.RESOLUTION else "📊 3 INCIDENT UPDATES"
    assert message.title == headline
    assert all(f"#{number} check-{number}/down" in message.text for number in range(1, 4))


async def test_the_writes_that_wait_for_a_full_store_are_bounded(
    tmp_path: Path, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("monitor.store_guard.MAX_WAITING_DELIVERY_WRITES", 2)
    metrics = MonitorMetrics()
    inner = await FillableStore.open(tmp_path / "state.db")
    store = GuardedStore(inner, metrics, fake_clock)
    monkeypatch.setattr(FillableStore, "full", True)
    for number in range(5):
        await store.enqueue([OutboxEntry(f"{number}:initial", "slack", number, "initial", "{}", fake_clock.now())])

    assert metrics.state_store_errors.labels(operation="dropped")._value.get() == 3
    monkeypatch.setattr(FillableStore, "full", False)
    await store.retry()
    assert [d.notification_id for d in await inner.pending_deliveries()] == ["0:initial", "1:initial"]
