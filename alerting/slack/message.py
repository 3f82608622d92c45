"""The text of Slack messages, shared by both modes: every character from a monitored system
escaped (it can never ping a channel or disguise a link), inside Block Kit's limits."""

import re
from typing import Any

from alerting.base import Notification
from alerting.messages import render

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_TEXT_CHARS = 4000
TRUNCATED = "… [truncated]"
_BROADCAST = re.compile(r"@(?=(channel|here|everyone)\b)", re.IGNORECASE)
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


def slack_escape(text: str) -> str:
    """Escape Slack's three control characters and defuse bare @channel/@here/@everyone."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@\u200b", escaped)


def truncate(escaped: str, limit: int) -> str:
    """Cut escaped text to `limit` characters with a visible marker, never inside an entity."""
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - len(TRUNCATED)]
    cut = _PARTIAL_ENTITY.sub("", cut)
    return cut + TRUNCATED


def sections(escaped_lines: list[str], room: int) -> list[dict[str, Any]]:
    """Lines packed into at most `room` sections of at most MAX_SECTION_CHARS each."""
    chunks: list[str] = []
    current = ""
    for line in escaped_lines:
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= MAX_SECTION_CHARS:
            current = candidate
            continue
        if current:
            chunks.append(current)
        current = truncate(line, MAX_SECTION_CHARS)
    if current:
        chunks.append(current)
    if len(chunks) > room:
        chunks = chunks[:room]
        chunks[-1] = truncate(chunks[-1] + "\n" + TRUNCATED, MAX_SECTION_CHARS)
    return [{"type": "section", "text": {"type": "mrkdwn", "text": chunk, "verbatim": True}} for chunk in chunks]


def build_payload(notification: Notification) -> dict[str, Any]:
    message = render(notification)
    lines = message.text.rstrip("\n").splitlines()
    body = [slack_escape(line) for line in lines[1:]]
    header = {"type": "header", "text": {"type": "plain_text", "text": truncate(message.title, MAX_HEADER_CHARS)}}
    context = {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": slack_escape(f"{notification.monitor} · incident #{notification.incident.id}"),
                "verbatim": True,
            }
        ],
    }
    body_blocks = sections(body, room=MAX_BLOCKS - 2)
    return {
        "text": truncate(slack_escape(message.text.rstrip("\n")), MAX_TEXT_CHARS),
        "blocks": [header, *body_blocks, context],
    }
