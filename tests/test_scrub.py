"""The one secret scrubber: what it masks, and what it leaves readable."""

import base64

import pytest

from monitor.scrub import register_header, register_secret, scrub


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET https://api.example.com/x?token=tk-1234&page=2", "tk-1234"),
        ("GET /x?api_key=k-5678 HTTP/1.1", "k-5678"),
        ("https://s3.example.com/o?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIA9", "abcdef0123"),
        ("https://s3.example.com/o?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIA9", "AKIA9"),
        ("redirect to /cb?client_secret=shh-999&password=pw-777", "shh-999"),
        ("redirect to /cb?client_secret=shh-999&password=pw-777", "pw-777"),
        ("postgresql://app:s3cr3t@db:5432/x", "s3cr3t"),
        ("clone https://ghp_abcdef@github.com/a/b", "ghp_abcdef"),
        ("Authorization: Basic " + base64.b64encode(b"bob:hunter22").decode(), "Ym9iOmh1bnRlcjIy"),
        ("Authorization: Bearer eyJhbGciOi.J9x", "eyJhbGciOi.J9x"),
    ],
)
def test_credentials_in_any_text_are_masked(text: str, secret: str) -> None:
    assert secret not in scrub(text)
    assert "***" in scrub(text)


def test_ordinary_text_is_left_readable() -> None:
    text = "Basic authentication failed; HTTP 503 on GET https://api.example.com/health?page=2 (bearer token expired)"
    assert scrub(text) == text


def test_registered_secrets_are_masked_in_every_spelling() -> None:
    register_secret("https://hooks.slack.example/services/T01/B02/webhook-path-secret")
    register_secret("Basic " + base64.b64encode(b"ops:p@ss-word-1").decode())

    shown = scrub("404 no_service for /services/T01/B02/webhook-path-secret; password p@ss-word-1, p%40ss-word-1")

    assert "webhook-path-secret" not in shown and "p@ss-word-1" not in shown
    assert shown.count("***") == 2


def test_a_credential_header_registers_its_value_and_an_ordinary_one_does_not() -> None:
    register_header("X-Api-Key", "key-value-4242")
    register_header("Accept", "application/vnd.example+json")

    assert scrub("echo: key-value-4242 application/vnd.example+json") == "echo: *** application/vnd.example+json"


def test_the_user_name_stays_and_its_password_goes() -> None:
    assert scrub("see postgres://monitor:pw-1@db/app") == "see postgres://monitor:***@db/app"
