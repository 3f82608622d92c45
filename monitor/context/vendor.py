"""One HTTP exchange with a vendor's API, with every way it can go wrong turned into a
`VendorError` whose message is one short line fit for a page ("not authorized",
"rate-limited, retry after 30s"), scrubbed of secrets."""

from typing import Any

import aiohttp

from monitor.durations import format_duration
from monitor.scrub import scrub

MAX_ERROR_CHARS = 160


class VendorError(Exception):
    """A vendor call failed; `str(error)` is one short, scrubbed line."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(scrub(" ".join(message.split()))[:MAX_ERROR_CHARS])
        self.retry_after = retry_after


async def request_json(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    timeout: float,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Any:
    """The decoded JSON answer of a 2xx response; a VendorError for anything else."""
    try:
        async with http.request(
            method, url, headers=headers, params=params, json=body, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            if response.status in (401, 403):
                raise VendorError("not authorized")
            if response.status == 429:
                raise _rate_limited(response.headers.get("Retry-After"))
            if response.status >= 400:
                raise VendorError(f"HTTP {response.status} {response.reason or ''}".strip())
            try:
                return await response.json(content_type=None)
            except ValueError:
                raise VendorError("malformed answer (not JSON)") from None
    except aiohttp.ClientError as exc:
        raise VendorError(f"unreachable ({type(exc).__name__})") from None
    except TimeoutError:
        raise VendorError(f"no answer within {format_duration(timeout)}") from None


def _rate_limited(retry_after: str | None) -> VendorError:
    try:
        seconds = float(retry_after) if retry_after else None
    except ValueError:
        seconds = None
    if seconds is None:
        return VendorError("rate-limited")
    return VendorError(f"rate-limited, retry after {format_duration(seconds)}", retry_after=seconds)
