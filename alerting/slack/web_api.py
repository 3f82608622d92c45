"""A small client of Slack's Web API (chat.postMessage, chat.update) for app mode, and the
classification of Slack's answers: HTTP 429 and `ok: false` with `ratelimited` wait for
Retry-After; Slack's own transient failures are retried; every other error (a wrong channel,
a bot not invited, a revoked token, a message too long) is dead-lettered with its reason,
since no retry can fix it."""

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import aiohttp

from alerting.base import Clock, DeliveryError, SecretEnv, format_duration
from alerting.http import parse_retry_after

RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_HINTS = {
    "channel_not_found": "the channel id is wrong, or the channel is private and the app is not in it",
    "not_in_channel": "invite the app to the channel (/invite @app)",
    "is_archived": "the channel is archived",
    "invalid_auth": "the bot token is not valid",
    "not_authed": "no bot token was sent",
    "token_revoked": "the bot token was revoked",
    "account_inactive": "the bot token belongs to a deleted app or user",
    "missing_scope": "the app lacks the chat:write scope",
    "msg_too_long": "the message is too long",
    "invalid_blocks": "Slack refused the message's blocks",
    "message_not_found": "the parent message is gone",
    "cant_update_message": "the parent message was not posted by this app",
}


def classify(method: str, error: str, retry_after: float | None) -> DeliveryError:
    """The DeliveryError for Slack's `ok: false` answer `error` to `method`."""
    if error in RETRYABLE_ERRORS:
        return DeliveryError(f"Slack {method}: {error}", retry_after=retry_after)
    hint = _HINTS.get(error)
    return DeliveryError(f"Slack {method}: {error}" + (f" ({hint})" if hint else ""), retryable=False)


@dataclass(frozen=True, slots=True)
class SlackWebApi:
    http: aiohttp.ClientSession
    api_url: str
    token: SecretEnv = field(repr=False)
    """Read at each call, like the webhook URL in webhook mode."""
    timeout: float
    clock: Clock

    async def call(self, method: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Call `method` with a JSON body; Slack's answer when `ok`, else a DeliveryError."""
        url = urljoin(self.api_url if self.api_url.endswith("/") else self.api_url + "/", method)
        try:
            async with self.http.post(
                url,
                json=arguments,
                headers={"Authorization": f"Bearer {self.token.value()}"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as response:
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self.clock.now())
                if response.status == 429:
                    raise classify(method, "ratelimited", retry_after)
                if response.status >= 500:
                    raise DeliveryError(f"Slack {method}: HTTP {response.status}", retry_after=retry_after)
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    raise DeliveryError(f"Slack {method}: HTTP {response.status} with no JSON answer") from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"Slack {method}: unreachable ({type(exc).__name__})") from None
        except TimeoutError:
            raise DeliveryError(f"Slack {method}: no answer within {format_duration(self.timeout)}") from None
        if not isinstance(answer, dict) or not answer.get("ok"):
            error = str((answer.get("error") if isinstance(answer, dict) else None) or "unknown_error")[:100]
            raise classify(method, error, retry_after)
        return answer
