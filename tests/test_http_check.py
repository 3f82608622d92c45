"""The HTTP check against real servers on 127.0.0.1: each failure kind is named."""

import asyncio
import json
import socket
import ssl

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from checks.base import CheckContext, Severity, Status
from checks.http import MAX_BODY_BYTES, HttpCheck
from checks.probe import probe_failure
from monitor.clock import SystemClock
from monitor.metrics import MonitorMetrics
from monitor.runner import run_check
from tests.net import closed_port


def target_app() -> web.Application:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "checks": {"db": {"up": True}}})

    async def degraded(_: web.Request) -> web.Response:
        return web.json_response({"status": "degraded"})

    async def error(_: web.Request) -> web.Response:
        return web.Response(status=503, text="<!channel> upstream exploded")

    async def garbage(_: web.Request) -> web.Response:
        return web.Response(text="not json at all")

    async def huge(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * (MAX_BODY_BYTES + 10) + b"needle")

    async def hang(_: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response()

    async def echo_headers(request: web.Request) -> web.Response:
        return web.json_response({"auth": request.headers.get("Authorization")})

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/degraded", degraded)
    app.router.add_get("/error", error)
    app.router.add_get("/garbage", garbage)
    app.router.add_get("/huge", huge)
    app.router.add_get("/hang", hang)
    app.router.add_get("/headers", echo_headers)
    return app


@pytest.fixture
async def target(serve) -> str:
    server = await serve(target_app())
    return f"http://127.0.0.1:{server.port}"


def make(context: CheckContext, **keys: object) -> HttpCheck:
    return HttpCheck("api", HttpCheck.Config.model_validate({"type": "http", "timeout": "2s", **keys}), context)



async def test_healthy_endpoint_is_ok_with_latency(check_context, target) -> None:
    (finding,) = await make(check_context, url=f"{target}/ok").run()
    assert finding.status is Status.OK
    assert finding.summary.startswith("HTTP 200 in ")
    assert finding.values["latency_seconds"] > 0


async def test_unexpected_status_is_down_at_the_configured_severity_with_the_body(check_context, target) -> None:
    (finding,) = await make(check_context, url=f"{target}/error", severity="P2").run()
    assert (finding.code, finding.status, finding.severity) == ("down", Status.CRITICAL, Severity.P2)
    assert "HTTP 503, expected 2xx" in finding.summary
    assert finding.evidence == ("failure: status", "body: <!channel> upstream exploded")


async def test_expect_status_list_accepts_what_it_names(check_context, target) -> None:
    (finding,) = await make(check_context, url=f"{target}/error", expect_status=[503]).run()
    assert finding.status is Status.OK


async def test_connection_refused_is_named(check_context) -> None:
    (finding,) = await make(check_context, url=f"http://127.0.0.1:{closed_port()}/").run()
    assert finding.status is Status.CRITICAL
    assert "connection refused" in finding.summary
    assert finding.evidence[0] == "failure: connection_refused"


class FailingResolver(AbstractResolver):
    """Answers every lookup with 'name not known', so no DNS query leaves the machine."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:  # type: ignore[override]
        raise OSError(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        pass


async def test_dns_failure_is_named() -> None:
    connector = aiohttp.TCPConnector(resolver=FailingResolver())
    async with aiohttp.ClientSession(connector=connector) as session:
        context = CheckContext(session, SystemClock(), MonitorMetrics())
        (finding,) = await make(context, url="http://api.example.invalid/health").run()
    assert finding.evidence[0] == "failure: dns"
    assert "DNS lookup failed for api.example.invalid" in finding.summary


async def test_untrusted_certificate_is_a_tls_failure(check_context, tmp_path) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    runner = web.AppRunner(target_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        (finding,) = await make(check_context, url=f"https://127.0.0.1:{port}/ok").run()
        (insecure,) = await make(check_context, url=f"https://127.0.0.1:{port}/ok", tls_verify=False).run()
    finally:
        await runner.cleanup()
    assert finding.evidence[0] == "failure: tls"
    assert "certificate" in finding.summary.lower()
    assert insecure.status is Status.OK


async def test_timeout_is_enforced_by_the_core_and_named(check_context, target) -> None:
    check = make(check_context, url=f"{target}/hang")
    result = await run_check(check, timeout=0.2)
    (finding,) = result.findings
    assert (finding.code, finding.status, finding.severity) == ("down", Status.CRITICAL, Severity.P1)
    assert finding.evidence[0] == "failure: timeout"


async def test_body_substring(check_context, target) -> None:
    (good,) = await make(check_context, url=f"{target}/ok", body_contains='"status"').run()
    (bad,) = await make(check_context, url=f"{target}/ok", body_contains="maintenance").run()
    assert good.status is Status.OK
    assert bad.evidence[0] == "failure: body_mismatch"
    assert "does not contain 'maintenance'" in bad.summary


async def test_json_field_conditions(check_context, target) -> None:
    conditions = {"status": "ok", "checks.db.up": True}
    (good,) = await make(check_context, url=f"{target}/ok", json_fields=conditions).run()
    (bad,) = await make(check_context, url=f"{target}/degraded", json_fields=conditions).run()
    (garbage,) = await make(check_context, url=f"{target}/garbage", json_fields=conditions).run()
    assert good.status is Status.OK
    assert 'JSON field status is "degraded", expected "ok"' in bad.summary
    assert "not valid JSON" in garbage.summary


async def test_body_over_one_mebibyte_is_not_searched(check_context, target) -> None:
    (finding,) = await make(check_context, url=f"{target}/huge", body_contains="needle").run()
    assert finding.status is Status.CRITICAL
    assert "exceeds" in finding.summary


async def test_headers_from_the_environment_are_sent(check_context, target, monkeypatch) -> None:
    monkeypatch.setenv("TEST_API_TOKEN", "Bearer s3cret")
    (finding,) = await make(
        check_context, url=f"{target}/headers", headers_env={"Authorization": "TEST_API_TOKEN"},
        json_fields={"auth": "Bearer s3cret"},
    ).run()
    assert finding.status is Status.OK


async def test_slow_response_is_a_p3_warning(check_context, target) -> None:
    findings = await make(check_context, url=f"{target}/ok", slow="0ms").run()
    slow = next(f for f in findings if f.code == "slow")
    assert (slow.status, slow.severity) == (Status.WARNING, Severity.P3)


async def test_degradation_against_the_learnt_baseline_is_p2(check_context, target) -> None:
    check = make(check_context, url=f"{target}/ok", degradation_percent=50, baseline_min_samples=5)
    for latency in (0.100, 0.110, 0.090, 0.100, 0.120):
        check.baseline.learn(latency)
    assert check._judge_latency(0.120) == []
    (degraded,) = check._judge_latency(0.300)
    assert (degraded.code, degraded.severity) == ("degraded", Severity.P2)
    assert "186% above its baseline of 105ms" in degraded.summary


async def test_jitter_on_a_fast_endpoint_is_not_degradation(check_context, target) -> None:
    check = make(check_context, url=f"{target}/ok", degradation_percent=50, baseline_min_samples=5)
    for latency in (0.001, 0.001, 0.001, 0.001, 0.001):
        check.baseline.learn(latency)
    assert check._judge_latency(0.004) == []
    assert [f.code for f in check._judge_latency(0.060)] == ["degraded"]


async def test_degradation_is_not_judged_before_enough_samples(check_context, target) -> None:
    check = make(check_context, url=f"{target}/ok", degradation_percent=50, baseline_min_samples=5)
    for latency in (0.010, 0.010, 0.010, 0.010):
        assert check._judge_latency(latency) == []
    assert check._judge_latency(5.0) == []


async def test_a_secret_in_the_url_never_reaches_the_finding(check_context) -> None:
    url = f"http://user:hunter22@127.0.0.1:{closed_port()}/health?token=hunter33"
    (finding,) = await make(check_context, url=url).run()
    text = json.dumps([finding.summary, *finding.evidence])
    assert "hunter22" not in text and "hunter33" not in text


def test_an_aiohttp_error_that_echoes_the_url_is_shown_without_its_query() -> None:
    url = "http://127.0.0.1:1/x?token=hunter44"
    request = aiohttp.RequestInfo(URL(url), "GET", CIMultiDictProxy(CIMultiDict()), URL(url))
    failure = probe_failure(aiohttp.TooManyRedirects(request, (), status=302, message="loop"), url)
    assert failure.kind == "invalid_response"
    assert "hunter44" not in failure.summary and "http://127.0.0.1:1/x" in failure.summary
