"""`type = "slack"`: Slack incoming webhooks, with `text` for the notification and Block Kit
`blocks` for the message, inside Slack's limits, and every character escaped so that text
from a monitored system can never ping a channel or disguise a link."""

import re
from typing import Any

import aiohttp
from pydantic import Field

from alerting.base import DeliveryError, Notification, SecretEnv, Sink, SinkConfig
from alerting.messages import render

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_TEXT_CHARS = 4000
TRUNCATED = "… [truncated]"
_MIN_SECONDS_BETWEEN_MESSAGES = 1.0
_BROADCAST = re.compile(r"@(?=(channel|here|everyone)\b)", re.IGNORECASE)
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


class SlackSinkConfig(SinkConfig):
    webhook_url_env: SecretEnv = Field(description="Environment variable holding the incoming-webhook URL.")


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


def _sections(escaped_lines: list[str], room: int) -> list[dict[str, Any]]:
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
    sections = _sections(body, room=MAX_BLOCKS - 2)
    return {
        "text": truncate(slack_escape(message.text.rstrip("\n")), MAX_TEXT_CHARS),
        "blocks": [header, *sections, context],
    }


class SlackSink(Sink[SlackSinkConfig]):
    type_name = "slack"
    Config = SlackSinkConfig

    _last_sent_at: float | None = None

    async def send(self, notification: Notification) -> None:
        await self._respect_rate_limit()
        payload = build_payload(notification)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        try:
            async with self.context.http.post(
                self.config.webhook_url_env.value(), json=payload, timeout=timeout
            ) as response:
                self._last_sent_at = self.context.clock.monotonic()
                if response.status == 200:
                    return
                reason = (await response.text())[:200]
                raise _delivery_error(response.status, reason, response.headers.get("Retry-After"))
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"Slack webhook unreachable: {type(exc).__name__}") from None
        except TimeoutError:
            raise DeliveryError(f"Slack webhook did not answer within {self.config.timeout}s") from None

    async def _respect_rate_limit(self) -> None:
        if self._last_sent_at is not None:
            await self.context.clock.sleep_until(self._last_sent_at + _MIN_SECONDS_BETWEEN_MESSAGES)


def _delivery_error(status: int, reason: str, retry_after: str | None) -> DeliveryError:
    if status == 429:
        wait = float(retry_after) if retry_after and retry_after.isdigit() else None
        return DeliveryError(f"Slack rate-limited the webhook (429 {reason})", retry_after=wait)
    if status >= 500:
        return DeliveryError(f"Slack answered {status} {reason}")
    return DeliveryError(f"Slack rejected the message: {status} {reason}", retryable=False)
