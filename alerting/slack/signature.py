"""Slack's request signature: `X-Slack-Signature` is `v0=` and the hex HMAC-SHA256, keyed
with the app's signing secret, of `v0:{X-Slack-Request-Timestamp}:{raw body}`. A request
older (or newer) than five minutes is refused, so that a captured one cannot be replayed."""

import hashlib
import hmac

MAX_AGE_SECONDS = 300.0
SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signature_problem(secrets: list[str], timestamp: str | None, signature: str | None, body: bytes,
                      now: float) -> str | None:
    """Why the request is refused, or None when one of `secrets` signed it; `now` is seconds since the epoch."""
    if not timestamp or not signature:
        return f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required"
    try:
        sent = int(timestamp)
    except ValueError:
        return f"{TIMESTAMP_HEADER} is not a number of seconds"
    if abs(now - sent) > MAX_AGE_SECONDS:
        return f"{TIMESTAMP_HEADER} is more than 5 minutes away from now (a replay?)"
    offered = signature.encode()
    if any(hmac.compare_digest(sign(secret, timestamp, body).encode(), offered) for secret in secrets):
        return None
    return f"{SIGNATURE_HEADER} does not match the signing secret"
