"""App mode against a local fake of Slack's Web API: one parent message per incident, every
later notification in its thread, the parent edited to the current state, the thread kept
across a restart, escaping in every block, and Slack's errors classified."""

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerting.base import DeliveryError, Notification, NotificationKind, SinkContext
from alerting.dispatcher import Dispatcher, Outgoing
from alerting.slack import SlackSink
from alerting.slack.cockpit import ACKNOWLEDGE, RESOLVED_COLOR, ROLLBACK, SNOOZE
from alerting.slack.threads import SlackThread, SqliteThreads
from alerting.slack.web_api import classify
from monitor.context.model import Deployment, IncidentContext, RailwayContext
from monitor.metrics import MonitorMetrics
from monitor.migrations import LATEST_VERSION, MIGRATIONS
from monitor.model import Severity, TimelineEvent
from monitor.sqlite_file import SqliteFile
from monitor.sqlite_store import SqliteStore
from monitor.sqlite_thread import SqliteThread
from tests.alerting_helpers import notification
from tests.fakes import START, FakeClock
from tests.slack.fake_slack import BOT_TOKEN, CHANNEL, SIGNING_SECRET, FakeSlack, buttons, every_text
from tests.store_seed import create_incident

MakeSink = Callable[..., Awaitable[SlackSink]]


@pytest.fixture
def slack() -> FakeSlack:
    return FakeSlack()


@pytest.fixture
async def make_sink(serve, slack, http_session, fake_clock, monkeypatch, tmp_path) -> AsyncIterator[MakeSink]:
    server = await serve(slack.app())
    opened: list[SqliteThread] = []
    monkeypatch.setenv("TEST_SLACK_BOT", BOT_TOKEN)
    monkeypatch.setenv("TEST_SLACK_SIGNING", SIGNING_SECRET)

    async def make(state: Path | None = tmp_path / "state.db", **keys: object) -> SlackSink:
        config = SlackSink.Config.model_validate({
            "type": "slack", "bot_token_env": "TEST_SLACK_BOT", "channel": CHANNEL,
            "signing_secret_env": "TEST_SLACK_SIGNING", "api_url": f"http://127.0.0.1:{server.port}/api/",
            "mention": {"P1": "<!subteam^S0123>"}, **keys,
        })
        threads = None
        if state is not None:
            opened.append(file := await SqliteThread.open(state))
            threads = SqliteThreads(file)
        return SlackSink("slack-oncall", config, SinkContext(http_session, fake_clock, threads))

    yield make
    for file in opened:
        await file.close()


def later(kind: NotificationKind, **changes: Any) -> Notification:
    made = notification(kind, **changes)
    return made.model_copy(update={"escalation_level": 1, "escalation_role": "backup on-call",
                                   "status": "Identified", "progress": ("restarted the pool",)})


async def test_the_first_notification_posts_the_parent_and_every_later_one_replies_in_its_thread(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    sink = await make_sink()
    await sink.send(notification())
    (parent,) = slack.posts()
    assert parent["channel"] == CHANNEL
    assert parent["text"].startswith("<!subteam^S0123> P1 api: Open"), "the configured mention pings on the page"
    assert set(buttons(parent)) == {ACKNOWLEDGE, SNOOZE}
    assert buttons(parent)[ACKNOWLEDGE]["value"] == "7"
    assert slack.authorizations[0] == f"Bearer {BOT_TOKEN}"
    parent_ts = "1700000000.000001"

    await sink.send(later(NotificationKind.ESCALATION))
    await sink.send(later(NotificationKind.STATUS_UPDATE, acknowledged_at=START, acknowledged_by="alice (U1)"))
    await sink.send(later(NotificationKind.RESOLUTION))

    escalation, _, resolution = slack.replies()
    assert [reply["thread_ts"] for reply in slack.replies()] == [parent_ts] * 3
    assert [reply["reply_broadcast"] for reply in slack.replies()] == [True, False, True]
    assert escalation["text"].startswith("<!subteam^S0123> ")
    assert "ESCALAT" in escalation["text"].upper()
    assert resolution["text"].startswith("✅ INCIDENT RESOLVED")
    assert len(slack.parents()) == 1, "one channel message per incident"

    acknowledged, resolved = slack.updates()[1], slack.updates()[-1]
    assert all(edit["ts"] == parent_ts and edit["channel"] == CHANNEL for edit in slack.updates())
    assert "*Acknowledged by*\nalice (U1)" in every_text(acknowledged)
    assert set(buttons(acknowledged)) == {SNOOZE}, "nothing left to acknowledge"
    assert resolved["attachments"][0]["color"] == RESOLVED_COLOR
    assert "*Status*\nResolved" in every_text(resolved)
    assert "*Duration*\n7m 30s" in every_text(resolved)
    assert buttons(resolved) == {}, "a resolved incident has no buttons"


async def test_a_reply_served_before_its_initial_alert_posts_the_parent_first(
    make_sink: MakeSink, slack: FakeSlack, tmp_path: Path, fake_clock: FakeClock
) -> None:
    """The queue serves the most severe first: the P1 raise overtakes the P3 initial alert."""
    sink = await make_sink()
    store = await SqliteStore.open(tmp_path / "outbox.db")
    dispatcher = Dispatcher({"slack-oncall": sink}, store, MonitorMetrics(), fake_clock)
    raised = notification(NotificationKind.SEVERITY_RAISED).model_copy(update={"previous_severity": Severity.P3})
    await dispatcher.submit([Outgoing(notification(severity=Severity.P3)), Outgoing(raised)])
    await dispatcher.drain(timeout=10)

    (parent,) = slack.parents()
    (reply,) = slack.replies()
    assert slack.posts() == [parent, reply], "the parent went out first"
    assert reply["thread_ts"] == "1700000000.000001"
    assert reply["text"].startswith("<!subteam^S0123> ")
    assert slack.updates(), "the initial alert, served last, only edits the parent"


async def test_the_thread_survives_a_restart(make_sink: MakeSink, slack: FakeSlack) -> None:
    before = await make_sink()
    await before.send(notification())
    await before.aclose()

    after = await make_sink()
    await after.send(later(NotificationKind.RESOLUTION))
    assert len(slack.parents()) == 1
    (reply,) = slack.replies()
    assert reply["thread_ts"] == "1700000000.000001"


async def test_without_a_state_file_threads_live_in_memory(make_sink: MakeSink, slack: FakeSlack) -> None:
    sink = await make_sink(state=None)
    await sink.send(notification())
    await sink.send(later(NotificationKind.RESOLUTION))
    assert len(slack.parents()) == 1 and slack.replies()[0]["thread_ts"] == "1700000000.000001"


async def test_untrusted_text_pings_nobody_in_any_block(make_sink: MakeSink, slack: FakeSlack) -> None:
    hostile = "<!channel> & <https://evil.example|click me> @here"
    sink = await make_sink()
    timeline = [TimelineEvent(at=START, kind="note", text=f"upstream said {hostile}")]
    await sink.send(notification(summary=f"GET failed: {hostile}", impact=hostile, check="api", timeline=timeline))
    await sink.send(later(NotificationKind.ESCALATION, summary=hostile, acknowledged_at=START,
                          acknowledged_by=f"mallory {hostile}"))
    await sink.send(later(NotificationKind.RESOLUTION, summary=hostile, resolution=hostile))
    texts = [text for _, body in slack.calls for text in every_text(body)]
    assert len(texts) > 20
    for text in texts:
        assert "<!channel>" not in text and "<https://" not in text and "@here" not in text
    assert any("&lt;!channel&gt; &amp; &lt;https://evil.example|click me&gt; @\u200bhere" in t for t in texts)
    assert any(t.startswith("<!subteam^S0123>") for t in texts), "the trusted mention is sent as written"


def suspect_context(**railway: Any) -> IncidentContext:
    target = Deployment(id="d-1", status="SUCCESS", created_at=START - timedelta(hours=2),
                        commit_hash="abc1234def", commit_message="fix <!channel> checkout", can_rollback=True)
    return IncidentContext(detected_at=START, suspect_deploy=True,
                           railway=RailwayContext(service="default", rollback_to=target, **railway))


async def test_a_recent_deploy_offers_a_rollback_behind_a_confirmation(make_sink: MakeSink, slack: FakeSlack) -> None:
    sink = await make_sink()
    await sink.send(notification(context=suspect_context()))
    rollback = buttons(slack.parents()[0])[ROLLBACK]
    assert rollback["text"]["text"] == "Roll back to abc1234"
    assert rollback["value"] == "7:d-1"
    assert rollback["confirm"]["confirm"]["text"] == "Roll back"
    assert rollback["confirm"]["text"]["text"] == 'Roll api back to abc1234 "fix &lt;!channel&gt; checkout"?'


async def test_no_rollback_button_without_a_recent_deploy_or_without_signing_secret(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    quiet = suspect_context().model_copy(update={"suspect_deploy": False})
    await (await make_sink()).send(notification(context=quiet))
    assert ROLLBACK not in buttons(slack.parents()[0])
    await (await make_sink(signing_secret_env=None)).send(notification(id=8))
    assert buttons(slack.parents()[1]) == {}, "no signing secret, no buttons (no one could verify a click)"


async def test_a_storm_message_is_one_channel_message_and_each_incident_gets_its_thread_later(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    sink = await make_sink()
    first, second = notification(id=1), notification(id=2)
    storm = first.model_copy(update={"kind": NotificationKind.GROUPED, "group": (first.incident, second.incident)})
    await sink.send(storm)
    (message,) = slack.posts()
    assert "attachments" not in message and "thread_ts" not in message
    await sink.send(later(NotificationKind.ESCALATION, id=2))
    assert [p["text"].split(": ")[0] for p in slack.parents()] == ["<!subteam^S0123> P1 api"]
    assert slack.replies()[0]["thread_ts"] == "1700000000.000002"

    resolved = [later(NotificationKind.RESOLUTION, id=i).incident for i in (1, 2)]
    await sink.send(later(NotificationKind.RESOLUTION, id=1).model_copy(update={"group": tuple(resolved)}))
    (edit,) = [u for u in slack.updates() if u["attachments"][0]["color"] == RESOLVED_COLOR]
    assert edit["ts"] == "1700000000.000002", "the one incident with a thread turns green"
    assert "thread_ts" not in slack.posts()[-1], "the grouped resolution is one channel message"


async def test_a_failed_edit_does_not_send_the_reply_twice(make_sink: MakeSink, slack: FakeSlack) -> None:
    sink = await make_sink()
    await sink.send(notification())
    slack.fail_updates.append("internal_error")
    await sink.send(later(NotificationKind.ESCALATION))
    assert len(slack.replies()) == 1


@pytest.mark.parametrize(
    ("status", "answer", "headers", "retryable", "retry_after"),
    [
        (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}, True, 7.0),
        (200, {"ok": False, "error": "ratelimited"}, {"Retry-After": "3"}, True, 3.0),
        (200, {"ok": False, "error": "internal_error"}, {}, True, None),
        (503, {"ok": False, "error": "service_unavailable"}, {}, True, None),
        (200, {"ok": False, "error": "channel_not_found"}, {}, False, None),
        (200, {"ok": False, "error": "not_in_channel"}, {}, False, None),
        (200, {"ok": False, "error": "invalid_auth"}, {}, False, None),
        (200, {"ok": False, "error": "msg_too_long"}, {}, False, None),
    ],
)
async def test_slack_errors_are_classified(
    make_sink: MakeSink, slack: FakeSlack, status: int, answer: dict[str, Any], headers: dict[str, str],
    retryable: bool, retry_after: float | None,
) -> None:
    slack.script.append((status, answer, headers))
    with pytest.raises(DeliveryError) as raised:
        await (await make_sink()).send(notification())
    assert raised.value.retryable is retryable
    assert raised.value.retry_after == retry_after
    assert BOT_TOKEN not in str(raised.value)


def test_a_dead_letter_says_what_to_fix() -> None:
    assert str(classify("chat.postMessage", "not_in_channel", None)) == (
        "Slack chat.postMessage: not_in_channel (invite the app to the channel (/invite @app))"
    )


async def test_a_bot_outside_the_channel_is_dead_lettered_with_the_reason(
    make_sink: MakeSink, slack: FakeSlack, tmp_path: Path, fake_clock: FakeClock
) -> None:
    slack.script.append((200, {"ok": False, "error": "not_in_channel"}, {}))
    store = await SqliteStore.open(tmp_path / "outbox.db")
    dispatcher = Dispatcher({"slack-oncall": await make_sink()}, store, MonitorMetrics(), fake_clock)
    await dispatcher.submit([Outgoing(notification())])
    await dispatcher.drain(timeout=10)
    (delivery,) = await store.deliveries_for(7)
    assert delivery.state == "dead" and "not_in_channel" in (delivery.last_error or "")
    assert len(slack.calls) == 1, "not retried"


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({"webhook_url_env": "TEST_SLACK_BOT", "bot_token_env": "TEST_SLACK_BOT", "channel": "C1"}, "not both"),
        ({"bot_token_env": "TEST_SLACK_BOT"}, "needs channel"),
        ({"webhook_url_env": "TEST_SLACK_BOT", "channel": "C1"}, "channel belong to app mode"),
        ({}, "set webhook_url_env"),
    ],
)
def test_config_names_the_mode_mistake(keys: dict[str, str], problem: str, monkeypatch) -> None:
    monkeypatch.setenv("TEST_SLACK_BOT", BOT_TOKEN)
    with pytest.raises(ValueError, match=problem):
        SlackSink.Config.model_validate({"type": "slack", **keys})


async def test_a_state_file_of_the_previous_schema_gains_the_threads_table(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    for migration in MIGRATIONS[:2]:
        for statement in migration.statements:
            db.execute(statement)
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    file = await SqliteThread.open(path)
    threads = SqliteThreads(file)
    await threads.remember("slack-oncall", 7, SlackThread(CHANNEL, "1700000000.000001"))
    assert await threads.thread("slack-oncall", 7) == SlackThread(CHANNEL, "1700000000.000001")
    assert await threads.thread("other-sink", 7) is None
    await file.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION


async def test_pruning_a_resolved_incident_forgets_its_thread(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteFile(path)
    old = create_incident(store, notification(NotificationKind.RESOLUTION).incident.model_copy(update={"id": 0}))
    current = create_incident(store, notification(code="slow").incident.model_copy(update={"id": 0}))
    threads = SqliteThreads(await SqliteThread.open(path))
    for incident, ts in ((old, "1.000001"), (current, "1.000002")):
        await threads.remember("slack-oncall", incident.id, SlackThread(CHANNEL, ts))
    assert store.prune(START + timedelta(days=30)) == 1
    assert await threads.thread("slack-oncall", old.id) is None
    assert await threads.thread("slack-oncall", current.id) == SlackThread(CHANNEL, "1.000002")
