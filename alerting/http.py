"""One JSON POST and the answer turned into success or a DeliveryError, shared by the
webhook, Alertmanager and PagerDuty sinks: 2xx is delivered; 408, 429 (honouring
Retry-After) and 5xx are worth a retry; any other answer is not. Error messages name the
endpoint by `name` only; DeliveryError scrubs every registered secret from them."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from alerting.base import DeliveryError, format_duration

_RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})
_REASON_CHARS = 200


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    """How errors name the endpoint: never a secret URL."""
    url: str = field(repr=False)


async def post_json(
    http: aiohttp.ClientSession,
    endpoint: Endpoint,
    body: bytes,
    *,
    timeout: float,
    now: datetime,
    headers: Mapping[str, str] | None = None,
) -> None:
    """POST `body` (already serialised, so that a signature covers the exact bytes sent)."""
    try:
        async with http.post(
            endpoint.url,
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            if 200 <= response.status < 300:
                return
            reason = " ".join((await response.text(errors="replace")).split())[:_REASON_CHARS]
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
            raise error_for_status(endpoint, response.status, reason, retry_after)
    except aiohttp.ClientError as exc:
        raise DeliveryError(f"{endpoint.name} unreachable: {_cause(exc)}") from None
    except TimeoutError:
        raise DeliveryError(f"{endpoint.name} did not answer within {format_duration(timeout)}") from None


def error_for_status(endpoint: Endpoint, status: int, reason: str, retry_after: float | None) -> DeliveryError:
    if status == 429:
        return DeliveryError(f"{endpoint.name} rate-limited the request (429 {reason})", retry_after=retry_after)
    if status >= 500 or status in _RETRYABLE_CLIENT_ERRORS:
        return DeliveryError(f"{endpoint.name} answered {status} {reason}", retry_after=retry_after)
    return DeliveryError(f"{endpoint.name} rejected the request: {status} {reason}", retryable=False)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def _cause(exc: aiohttp.ClientError) -> str:
    detail = getattr(exc, "os_error", None)
    if isinstance(exc, aiohttp.ClientConnectorError) and getattr(detail, "strerror", None):
        return f"{type(exc).__name__} ({detail.strerror})"
    return type(exc).__name__
