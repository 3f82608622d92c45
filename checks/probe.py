"""What every HTTP probe shares: URLs checked, failures named by kind, capped bodies."""

import ssl
from urllib.parse import urlsplit

import aiohttp

from checks.base import scrub

MAX_BODY_BYTES = 1024 * 1024
_EVIDENCE_BODY_CHARS = 500

PROBE_ERRORS = (aiohttp.ClientError, ssl.SSLError, TimeoutError)
"""The exceptions a request can end with that `probe_failure` names."""


class ProbeFailure(Exception):
    """The endpoint failed in a way named by `kind` (dns, connection_refused, tls, status, ...)."""

    def __init__(self, kind: str, summary: str, evidence: tuple[str, ...] = ()) -> None:
        super().__init__(summary)
        self.kind = kind
        self.summary = summary
        self.evidence = evidence


def require_http_url(value: str) -> str:
    """`value` itself when it is an http(s) URL with a host; a ValueError (which never shows
    credentials or query) otherwise. For config validators."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {scrub(value)!r}")
    return value


def probe_failure(exc: BaseException, url: str) -> ProbeFailure:
    """The named failure for one of `PROBE_ERRORS` raised while requesting `url`."""
    # The order matters: the TLS and DNS errors are subclasses of the connector error,
    # and aiohttp's read timeouts are both ClientErrors and TimeoutErrors.
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ProbeFailure("dns", f"DNS lookup failed for {urlsplit(url).hostname}: {exc.os_error}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError | ssl.SSLError):
        return ProbeFailure("tls", f"TLS error: {_tls_reason(exc)}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return ProbeFailure("connection_refused", "connection refused")
        return ProbeFailure("connect", f"cannot connect: {exc.os_error}")
    if isinstance(exc, TimeoutError):
        return ProbeFailure("timeout", "timed out")
    return ProbeFailure("invalid_response", scrub(f"invalid response: {type(exc).__name__}: {exc}"))


async def read_capped(response: aiohttp.ClientResponse) -> bytes:
    """At most MAX_BODY_BYTES + 1 bytes of the body: enough to know it was too long."""
    length = response.content_length
    if length is not None and length <= MAX_BODY_BYTES and "Content-Encoding" not in response.headers:
        return await response.read()  # the common case, in one read: the parser stops at Content-Length
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return bytes(body[: MAX_BODY_BYTES + 1])
    return bytes(body)


def body_evidence(body: bytes) -> tuple[str, ...]:
    """The start of a response body as an evidence line; none for an empty body."""
    if not body:
        return ()
    text = body[:_EVIDENCE_BODY_CHARS].decode("utf-8", errors="replace")
    suffix = " [truncated]" if len(body) > _EVIDENCE_BODY_CHARS else ""
    return (scrub(f"body: {text}{suffix}"),)


def _tls_reason(exc: BaseException) -> str:
    certificate_error = getattr(exc, "certificate_error", None)
    return str(certificate_error or getattr(exc, "os_error", None) or exc)
