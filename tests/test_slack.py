"""Slack messages: playbook shapes, escaping of untrusted text, Block Kit limits, rate limit."""

import asyncio
import re

import pytest

from alerting.base import NotificationKind, SinkContext
from alerting.slack import MAX_BLOCKS, MAX_SECTION_CHARS, SlackSink, build_payload, slack_escape
from tests.alerting_helpers import Receiver, notification
from tests.fakes import FakeClock, settle


def test_initial_alert_starts_with_the_playbook_lines() -> None:
    text = build_payload(notification())["text"]
    assert text.splitlines()[:5] == [
        "🚨 INCIDENT DETECTED 🚨",
        "Severity: P1",
        "Service: api",
        "Impact: customers cannot load the dashboard",
        "Status: Investigating",
    ]
    assert "Runbook: Complete Outage" in text
    assert "1. Check the hosting provider's status page" in text
    assert "Next update: in 15m" in text


def test_resolution_starts_with_the_playbook_lines() -> None:
    lines = build_payload(notification(NotificationKind.RESOLUTION))["text"].splitlines()
    assert lines[0] == "✅ INCIDENT RESOLVED"
    assert lines[1] == "Duration: 2026-11-26T19:00:00Z - 2026-11-26T19:07:30Z (7m 30s)"
    assert lines[2] == "Resolution: check passing again (2 consecutive good runs)"


def test_untrusted_text_cannot_ping_or_disguise_links() -> None:
    payload = build_payload(notification())
    every_text = [payload["text"]] + [
        block["text"]["text"] for block in payload["blocks"] if block["type"] == "section"
    ]
    for text in every_text:
        assert "<!channel>" not in text and "<https://" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click me&gt; @\u200bhere" in payload["text"]


def test_escape_replaces_only_the_three_control_characters() -> None:
    assert slack_escape("<!channel> & <https://evil|ok>") == "&lt;!channel&gt; &amp; &lt;https://evil|ok&gt;"
    assert slack_escape("café \"quoted\" 'x'") == "café \"quoted\" 'x'"


def test_huge_evidence_stays_within_block_kit_limits_and_says_it_was_cut() -> None:
    evidence = [f"pid {i}: " + "<x>" * 400 for i in range(2000)]
    payload = build_payload(notification(evidence=evidence))
    sections = [block for block in payload["blocks"] if block["type"] == "section"]
    assert len(payload["blocks"]) <= MAX_BLOCKS
    assert all(len(block["text"]["text"]) <= MAX_SECTION_CHARS for block in sections)
    assert sections[-1]["text"]["text"].endswith("… [truncated]")
    assert not any(re.search(r"&(?!amp;|lt;|gt;)", block["text"]["text"]) for block in sections)
    assert len(payload["blocks"][0]["text"]["text"]) <= 150


@pytest.fixture
def webhook_env(monkeypatch):
    def point_at(url: str) -> None:
        monkeypatch.setenv("TEST_SLACK_WEBHOOK", url)

    return point_at


def slack_sink(context: SinkContext, **keys: object) -> SlackSink:
    config = SlackSink.Config.model_validate({"type": "slack", "webhook_url_env": "TEST_SLACK_WEBHOOK", **keys})
    return SlackSink("slack-oncall", config, context)


async def test_posts_text_and_blocks_to_the_webhook(serve, webhook_env, http_session, fake_clock) -> None:
    receiver = Receiver()
    server = await serve(receiver.app())
    webhook_env(f"http://127.0.0.1:{server.port}/hook")
    await slack_sink(SinkContext(http_session, fake_clock)).send(notification())
    (payload,) = receiver.received
    assert payload["text"].startswith("🚨 INCIDENT DETECTED 🚨\nSeverity: P1")
    assert payload["blocks"][0]["type"] == "header"


async def test_at_most_one_message_a_second_per_webhook(serve, webhook_env, http_session) -> None:
    clock = FakeClock()
    receiver = Receiver()
    server = await serve(receiver.app())
    webhook_env(f"http://127.0.0.1:{server.port}/hook")
    sink = slack_sink(SinkContext(http_session, clock))
    await sink.send(notification())
    second = asyncio.create_task(sink.send(notification(NotificationKind.RESOLUTION)))
    await settle()
    await asyncio.sleep(0.05)
    assert len(receiver.received) == 1
    await clock.advance(1.0)
    await second
    assert len(receiver.received) == 2
