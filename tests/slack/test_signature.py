"""Slack's request signature and its five-minute replay window, on an explicit clock."""

from alerting.slack.signature import sign, signature_problem

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BODY = b"payload=%7B%22type%22%3A%22block_actions%22%7D"
SENT = 1_800_000_000


def check(signature: str | None, *, now: float = SENT, timestamp: str | None = str(SENT), body: bytes = BODY,
          secrets: tuple[str, ...] = (SECRET,)) -> tuple[int | None, str | None]:
    return signature_problem(list(secrets), timestamp, signature, body, now)


def test_the_signature_is_the_v0_hmac_of_timestamp_and_raw_body() -> None:
    # Slack's documented example: this secret, timestamp and body give this signature.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert sign(SECRET, "1531420618", body) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_a_fresh_request_signed_with_any_of_the_secrets_passes() -> None:
    assert check(sign(SECRET, str(SENT), BODY)) is None
    assert check(sign(SECRET, str(SENT), BODY), secrets=("other", SECRET)) is None


def test_a_wrong_secret_or_a_changed_body_is_refused() -> None:
    mismatch = "X-Slack-Signature does not match the signing secret"
    assert check(sign("other", str(SENT), BODY)) == mismatch
    assert check(sign(SECRET, str(SENT), BODY), body=BODY + b"x") == mismatch


def test_requests_older_or_newer_than_five_minutes_are_refused() -> None:
    signature = sign(SECRET, str(SENT), BODY)
    assert check(signature, now=SENT + 299) is None
    assert "more than 5 minutes" in (check(signature, now=SENT + 301) or "")
    assert "more than 5 minutes" in (check(signature, now=SENT - 301) or "")


def test_missing_or_garbled_headers_are_refused() -> None:
    assert check(None) == "X-Slack-Signature and X-Slack-Request-Timestamp are required"
    assert check("v0=00", timestamp=None) == "X-Slack-Signature and X-Slack-Request-Timestamp are required"
    assert check("v0=00", timestamp="yesterday") == "X-Slack-Request-Timestamp is not a number of seconds"
