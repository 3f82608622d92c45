"""The integration check against vendor responses served by VendorMock (the vendors
cannot be reached from here; fixtures/README.md names the documentation they follow)."""

import socket
import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError
from yarl import URL

from checks.base import CheckContext
from checks.integration import IntegrationCheck
from monitor.metrics import MonitorMetrics
from monitor.model import Severity, Status, worst_status
from tests.fakes import FakeClock
from tests.integrations.helpers import (
    CLERK_API,
    SHOPIFY_SHOP,
    XERO_API,
    XERO_IDENTITY,
    XERO_STATUS,
    VendorMock,
    by_code,
    connection_key,
    fixture,
)

MAJOR_INCIDENT = "Accounting API returning errors (https://status.xero.com/incidents/9tq4vw2mk7xc)"
DNS_ERROR = socket.gaierror(-2, "Name or service not known")
EXPIRED_ERROR = ssl.SSLCertVerificationError(
    1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired (_ssl.c:1006)"
)
MINOR_INCIDENT = "Delays to bank feed transactions (https://status.xero.com/incidents/2bz8qy4nw1ds)"


@pytest.fixture
def vendor() -> Iterator[VendorMock]:
    with VendorMock() as mocked:
        yield mocked


def make_check(context: CheckContext, name: str = "xero", **config: Any) -> IntegrationCheck:
    settings = {"type": "integration", "provider": "xero", "timeout": "10s", **config}
    return IntegrationCheck(name, IntegrationCheck.Config.model_validate(settings), context)


def xero_answers(vendor: VendorMock, api_status: int = 401, status_page: str = "statuspage_operational.json") -> None:
    vendor.get(XERO_API, status=api_status, payload=fixture("xero_unauthorized.json"), repeat=True)
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"), repeat=True)
    vendor.get(XERO_STATUS, payload=fixture(status_page), repeat=True)


async def test_an_unauthenticated_401_proves_the_vendor_api_answers(
    vendor: VendorMock, check_context: CheckContext
) -> None:
    xero_answers(vendor, api_status=401)

    findings = by_code(await make_check(check_context).run())

    assert findings["unreachable"].status is Status.OK
    assert f"HTTP 401 on GET {XERO_API}" in findings["unreachable"].summary
    assert findings["upstream_degraded"].status is Status.OK
    assert "credentials_rejected" not in findings


@pytest.mark.parametrize(
    ("answer", "kind", "reason"),
    [
        ({"status": 503, "body": "upstream connect error"}, "status", "HTTP 503"),
        (
            {"exception": aiohttp.ClientConnectorDNSError(connection_key("api.xero.com"), DNS_ERROR)},
            "dns",
            "DNS lookup failed for api.xero.com: [Errno -2] Name or service not known",
        ),
        (
            {"exception": aiohttp.ClientConnectorCertificateError(connection_key("api.xero.com"), EXPIRED_ERROR)},
            "tls",
            f"TLS error: {EXPIRED_ERROR}",
        ),
        (
            {"exception": aiohttp.ClientConnectorError(connection_key("api.xero.com"), ConnectionRefusedError(111))},
            "connection_refused",
            "connection refused",
        ),
        ({"exception": TimeoutError()}, "timeout", "no answer within 4s"),
    ],
    ids=["5xx", "dns", "tls", "refused", "timeout"],
)
async def test_each_way_of_failing_is_named_in_the_finding(
    vendor: VendorMock, check_context: CheckContext, answer: dict[str, Any], kind: str, reason: str
) -> None:
    vendor.get(XERO_API, **answer)
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"))
    vendor.get(XERO_STATUS, payload=fixture("statuspage_operational.json"))

    finding = by_code(await make_check(check_context).run())["unreachable"]

    assert finding.status is Status.CRITICAL
    assert finding.severity is Severity.P2
    assert finding.summary == f"Xero API unreachable: GET {XERO_API} failed: {reason}"
    assert f"GET {XERO_API}: {kind}: {reason}" in finding.evidence


async def test_a_5xx_body_is_kept_as_evidence(vendor: VendorMock, check_context: CheckContext) -> None:
    vendor.get(XERO_API, status=502, body="<html>Bad gateway</html>")
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"))
    vendor.get(XERO_STATUS, payload=fixture("statuspage_operational.json"))

    finding = by_code(await make_check(check_context).run())["unreachable"]

    assert "body: <html>Bad gateway</html>" in finding.evidence


async def test_a_second_host_failing_is_counted_too(vendor: VendorMock, check_context: CheckContext) -> None:
    vendor.get(XERO_API, status=401)
    vendor.get(XERO_IDENTITY, status=500)
    vendor.get(XERO_STATUS, payload=fixture("statuspage_operational.json"))

    finding = by_code(await make_check(check_context).run())["unreachable"]

    assert finding.status is Status.CRITICAL
    assert finding.summary == f"Xero API unreachable: GET {XERO_IDENTITY} failed: HTTP 500"


async def test_a_failing_probe_names_the_vendors_incident(vendor: VendorMock, check_context: CheckContext) -> None:
    xero_answers(vendor, api_status=503, status_page="statuspage_major_incident.json")

    findings = by_code(await make_check(check_context).run())

    unreachable = findings["unreachable"]
    assert unreachable.status is Status.CRITICAL
    assert unreachable.severity is Severity.P2
    assert unreachable.summary.startswith(f"upstream incident at Xero: {MAJOR_INCIDENT}; Xero API unreachable")
    evidence = "\n".join(unreachable.evidence)
    assert "We have identified the cause of the elevated error rates" in evidence
    assert "component Accounting API: major_outage" in evidence
    assert "Planned database maintenance" not in evidence  # scheduled, not in progress
    # The vendor's own report stays its own (lower) finding, no longer called non-critical.
    upstream = findings["upstream_degraded"]
    assert (upstream.status, upstream.severity) == (Status.WARNING, Severity.P3)
    assert upstream.summary == f"Xero reports Partial System Outage (major): {MAJOR_INCIDENT}"


async def test_a_failing_probe_names_maintenance_in_progress(vendor: VendorMock, check_context: CheckContext) -> None:
    page = fixture("statuspage_major_incident.json")
    page["incidents"] = []
    page["scheduled_maintenances"][0]["status"] = "in_progress"
    page["status"] = {"indicator": "maintenance", "description": "Service Under Maintenance"}
    vendor.get(XERO_API, status=503)
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"))
    vendor.get(XERO_STATUS, payload=page)

    findings = by_code(await make_check(check_context).run())

    assert findings["unreachable"].summary.startswith(
        "upstream maintenance at Xero: Planned database maintenance (https://status.xero.com/incidents/m0x3ka8wq2tn)"
    )
    assert findings["upstream_degraded"].status is Status.OK


async def test_vendor_trouble_while_our_probe_passes_is_a_p3_integration_issue(
    vendor: VendorMock, check_context: CheckContext
) -> None:
    xero_answers(vendor, api_status=401, status_page="statuspage_minor_incident.json")

    findings = by_code(await make_check(check_context).run())

    assert findings["unreachable"].status is Status.OK
    upstream = findings["upstream_degraded"]
    assert upstream.status is Status.WARNING
    assert upstream.severity is Severity.P3
    assert upstream.summary == (
        f"non-critical integration issue: Xero reports Minor Service Outage (minor): {MINOR_INCIDENT}"
    )
    assert "component Bank Feeds: degraded_performance" in upstream.evidence


async def test_a_misspelt_status_component_is_shown(vendor: VendorMock, check_context: CheckContext) -> None:
    xero_answers(vendor, api_status=401)

    findings = by_code(await make_check(check_context, status_components=["Acounting API"]).run())

    assert findings["upstream_degraded"].evidence == ("component 'Acounting API' is not on the status page",)


async def test_status_components_limit_what_counts(vendor: VendorMock, check_context: CheckContext) -> None:
    xero_answers(vendor, api_status=401, status_page="statuspage_minor_incident.json")

    ours = by_code(await make_check(check_context, status_components=["Accounting API"]).run())
    theirs = by_code(await make_check(check_context, status_components=["bank feeds"]).run())

    assert ours["upstream_degraded"].status is Status.OK
    assert ours["upstream_degraded"].evidence == ()
    assert theirs["upstream_degraded"].status is Status.WARNING
    assert theirs["upstream_degraded"].summary == (
        f"non-critical integration issue: Xero reports Bank Feeds: degraded performance: {MINOR_INCIDENT}"
    )


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 500, "body": "oops"},
        {"status": 200, "body": "<html>status</html>", "content_type": "text/html"},
        {"exception": aiohttp.ClientConnectorError(connection_key("status.xero.com"), ConnectionRefusedError(111))},
    ],
    ids=["5xx", "not-statuspage", "refused"],
)
async def test_an_unreadable_status_page_alone_never_fails_the_check(
    vendor: VendorMock, check_context: CheckContext, answer: dict[str, Any]
) -> None:
    vendor.get(XERO_API, status=401)
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"))
    vendor.get(XERO_STATUS, **answer)

    findings = await make_check(check_context).run()

    assert worst_status(findings) is Status.OK
    reachable = by_code(findings)["unreachable"]
    assert any(line.startswith("Xero status page unreadable: ") for line in reachable.evidence)


async def test_an_unreadable_status_page_while_failing_still_reports_the_outage(
    vendor: VendorMock, check_context: CheckContext
) -> None:
    vendor.get(XERO_API, status=503)
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"))
    vendor.get(XERO_STATUS, status=503)

    findings = by_code(await make_check(check_context).run())

    assert findings["unreachable"].summary == f"Xero API unreachable: GET {XERO_API} failed: HTTP 503"
    assert f"Xero status page unreadable: HTTP 503 from {XERO_STATUS}" in findings["unreachable"].evidence
    assert "upstream_degraded" not in findings
    # The vendor's view was not judged this run: an incident about it neither confirms nor clears.
    assert findings["unreachable"].blocks == ("upstream_degraded",)


async def test_the_status_page_is_not_read_on_every_passing_run(
    vendor: VendorMock, check_context: CheckContext
) -> None:
    xero_answers(vendor)
    check = make_check(check_context)

    await check.run()
    await check.run()

    assert len(vendor.sent(XERO_STATUS)) == 1
    assert len(vendor.sent(XERO_API)) == 2


async def test_the_status_page_is_read_again_as_soon_as_the_probe_fails(
    vendor: VendorMock, check_context: CheckContext
) -> None:
    vendor.get(XERO_API, status=401)
    vendor.get(XERO_API, status=503)
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"), repeat=True)
    vendor.get(XERO_STATUS, payload=fixture("statuspage_operational.json"))
    vendor.get(XERO_STATUS, payload=fixture("statuspage_major_incident.json"))
    check = make_check(check_context)

    await check.run()
    findings = by_code(await check.run())

    assert len(vendor.sent(XERO_STATUS)) == 2
    assert findings["unreachable"].summary.startswith(f"upstream incident at Xero: {MAJOR_INCIDENT}")


@pytest.fixture
def fake_context(http_session: aiohttp.ClientSession, fake_clock: FakeClock) -> CheckContext:
    return CheckContext(http_session, fake_clock, MonitorMetrics())


async def test_the_status_page_is_read_again_after_its_interval(
    vendor: VendorMock, fake_context: CheckContext, fake_clock: FakeClock
) -> None:
    xero_answers(vendor)
    check = make_check(fake_context, status_page_interval="5m")

    await check.run()
    fake_clock.consume(299)
    await check.run()
    reads_within_interval = len(vendor.sent(XERO_STATUS))
    fake_clock.consume(2)
    await check.run()

    assert reads_within_interval == 1
    assert len(vendor.sent(XERO_STATUS)) == 2


async def test_while_the_probe_keeps_failing_the_status_page_is_read_once_a_minute(
    vendor: VendorMock, fake_context: CheckContext, fake_clock: FakeClock
) -> None:
    xero_answers(vendor, api_status=503)
    check = make_check(fake_context)

    for _ in range(4):  # runs 30 s apart
        await check.run()
        fake_clock.consume(30)

    assert len(vendor.sent(XERO_STATUS)) == 2


async def test_the_last_good_answer_is_used_when_the_status_page_stops_answering(
    vendor: VendorMock, fake_context: CheckContext, fake_clock: FakeClock
) -> None:
    vendor.get(XERO_API, status=401)
    vendor.get(XERO_API, status=503)
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"), repeat=True)
    vendor.get(XERO_STATUS, payload=fixture("statuspage_major_incident.json"))
    vendor.get(XERO_STATUS, status=502)
    check = make_check(fake_context)

    await check.run()
    fake_clock.consume(120)
    finding = by_code(await check.run())["unreachable"]

    assert finding.summary.startswith(f"upstream incident at Xero: {MAJOR_INCIDENT}")
    assert f"Xero status page unreadable: HTTP 502 from {XERO_STATUS}" in finding.evidence
    assert "its last answer, 2m old:" in finding.evidence


async def test_status_page_reading_can_be_turned_off(vendor: VendorMock, check_context: CheckContext) -> None:
    xero_answers(vendor, api_status=503)

    findings = by_code(await make_check(check_context, status_page=False).run())

    assert vendor.sent(XERO_STATUS) == []
    assert set(findings) == {"unreachable"}
    assert "Xero status page (not read automatically): https://status.xero.com" in findings["unreachable"].evidence


@pytest.mark.parametrize(
    ("provider", "extra", "url", "header", "sent"),
    [
        ("xero", {}, XERO_API, "Authorization", "Bearer secret-token"),
        ("shopify", {"shop": "acme"}, SHOPIFY_SHOP, "X-Shopify-Access-Token", "secret-token"),
        ("clerk", {}, CLERK_API, "Authorization", "Bearer secret-token"),
    ],
)
async def test_a_rejected_token_is_its_own_p2_finding(
    vendor: VendorMock,
    check_context: CheckContext,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    extra: dict[str, str],
    url: str,
    header: str,
    sent: str,
) -> None:
    monkeypatch.setenv("VENDOR_TOKEN", "secret-token")
    vendor.get(url, status=401, payload={"errors": "[API] Invalid API key or access token"})
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"))
    vendor.get(XERO_STATUS, payload=fixture("statuspage_operational.json"))

    check = make_check(check_context, name=provider, provider=provider, token_env="VENDOR_TOKEN", **extra)
    findings = by_code(await check.run())

    assert vendor.sent(url)[0].kwargs["headers"][header] == sent
    assert findings["unreachable"].status is Status.OK
    rejected = findings["credentials_rejected"]
    assert rejected.status is Status.CRITICAL
    assert rejected.severity is Severity.P2
    assert f"rejected our credentials ($VENDOR_TOKEN: invalid or expired, HTTP 401 on GET {url})" in rejected.summary
    assert "secret-token" not in rejected.summary


async def test_credentials_are_not_judged_while_the_api_is_down(
    vendor: VendorMock, check_context: CheckContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XERO_TOKEN", "good-token")
    xero_answers(vendor, api_status=503)

    findings = by_code(await make_check(check_context, token_env="XERO_TOKEN").run())

    assert "credentials_rejected" not in findings
    assert findings["unreachable"].blocks == ("credentials_rejected",)


async def test_an_accepted_token_is_reported_ok(
    vendor: VendorMock, check_context: CheckContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XERO_TOKEN", "good-token")
    vendor.get(XERO_API, payload=fixture("xero_connections.json"))
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"))
    vendor.get(XERO_STATUS, payload=fixture("statuspage_operational.json"))

    findings = await make_check(check_context, token_env="XERO_TOKEN").run()

    assert worst_status(findings) is Status.OK
    assert by_code(findings)["credentials_rejected"].summary == (
        f"Xero accepted our credentials ($XERO_TOKEN): HTTP 200 on GET {XERO_API}"
    )


async def test_a_forbidden_token_and_an_echoed_secret(
    vendor: VendorMock, check_context: CheckContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XERO_TOKEN", "tok-abc123")
    vendor.get(XERO_API, status=403, body='{"Detail": "token tok-abc123 may not access this tenant"}')
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"))
    vendor.get(XERO_STATUS, payload=fixture("statuspage_operational.json"))

    finding = by_code(await make_check(check_context, token_env="XERO_TOKEN").run())["credentials_rejected"]

    assert finding.status is Status.CRITICAL
    assert "not allowed to use this endpoint" in finding.summary
    assert finding.evidence == ('body: {"Detail": "token *** may not access this tenant"}',)


async def test_auth_path_moves_the_authenticated_probe(
    vendor: VendorMock, check_context: CheckContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPIFY_TOKEN", "shpat_1")
    custom_path = "https://acme.myshopify.com/admin/api/2026-01/shop.json"
    vendor.get(custom_path, payload=fixture("shopify_shop.json"))

    check = make_check(
        check_context,
        provider="shopify",
        shop="acme",
        token_env="SHOPIFY_TOKEN",
        auth_path="/admin/api/2026-01/shop.json",
    )
    findings = by_code(await check.run())

    assert findings["credentials_rejected"].status is Status.OK
    assert vendor.sent(SHOPIFY_SHOP) == []


async def test_clerk_unreachable_means_users_cannot_log_in(vendor: VendorMock, check_context: CheckContext) -> None:
    vendor.get(CLERK_API, status=500)
    vendor.get("https://clerk.example.com/v1/environment", status=200)

    findings = by_code(await make_check(check_context, provider="clerk", frontend_api="clerk.example.com").run())

    finding = findings["unreachable"]
    assert finding.summary == f"Clerk API unreachable, users cannot log in: GET {CLERK_API} failed: HTTP 500"
    assert finding.severity is Severity.P2
    # Clerk's status page is not a confirmed Statuspage API: named for people, never requested.
    assert "Clerk status page (not read automatically): https://status.clerk.com" in finding.evidence
    assert [url for _, url in vendor.requests] == [URL(CLERK_API), URL("https://clerk.example.com/v1/environment")]


async def test_the_unreachable_severity_can_be_raised(vendor: VendorMock, check_context: CheckContext) -> None:
    vendor.get(CLERK_API, exception=TimeoutError())

    finding = by_code(await make_check(check_context, provider="clerk", severity="P1").run())["unreachable"]

    assert finding.severity is Severity.P1


async def test_shopify_probes_the_store_api_and_not_its_status_page(
    vendor: VendorMock, check_context: CheckContext
) -> None:
    vendor.get(SHOPIFY_SHOP, status=401, payload=fixture("shopify_unauthorized.json"))

    findings = await make_check(check_context, provider="shopify", shop="https://acme.myshopify.com/").run()

    assert worst_status(findings) is Status.OK
    assert [url for _, url in vendor.requests] == [URL(SHOPIFY_SHOP)]


async def test_a_custom_vendor_with_any_statuspage(vendor: VendorMock, check_context: CheckContext) -> None:
    vendor.get("https://api.acme.test/v2/ping", status=502)
    vendor.get("https://status.acme.test/api/v2/summary.json", payload=fixture("statuspage_major_incident.json"))

    check = make_check(
        check_context,
        name="acme",
        provider="custom",
        vendor="Acme",
        url="https://api.acme.test/v2/ping",
        status_page_url="https://status.acme.test/",
    )
    finding = by_code(await check.run())["unreachable"]

    assert finding.summary.startswith(f"upstream incident at Acme: {MAJOR_INCIDENT}; Acme API unreachable")


async def test_a_timeout_of_the_whole_run_is_an_unreachable_finding(check_context: CheckContext) -> None:
    finding = make_check(check_context, provider="clerk").timeout_finding(10)

    assert (finding.code, finding.status, finding.severity) == ("unreachable", Status.CRITICAL, Severity.P2)
    assert finding.summary == "Clerk API unreachable, users cannot log in: no result within 10s (timeout)"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"provider": "xero", "shop": "acme"}, "shop applies only to provider shopify"),
        ({"provider": "shopify"}, "provider shopify needs shop"),
        ({"provider": "custom"}, "provider custom needs url"),
        ({"provider": "xero", "url": "https://api.xero.com"}, "url applies only to provider custom"),
        ({"provider": "clerk", "auth_path": "/v1/users"}, "auth_path needs token_env"),
        ({"provider": "xero", "token_env": "NO_SUCH_VARIABLE_SET"}, "NO_SUCH_VARIABLE_SET is not set"),
        ({"provider": "custom", "url": "ftp://files.acme.test"}, "expected an http:// or https:// URL"),
        ({"provider": "shopify", "shop": "acme store"}, "expected a store name"),
        ({"provider": "oracle"}, "Input should be 'xero', 'shopify', 'clerk' or 'custom'"),
        ({"provider": "xero", "statuspage": True}, "Extra inputs are not permitted"),
    ],
)
def test_config_mistakes_are_named(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        IntegrationCheck.Config.model_validate({"type": "integration", **config})
