"""The TLS check against a local HTTPS server on 127.0.0.1 whose certificates are made
here: from a test CA (trustme) and, for the self-signed case, with cryptography."""

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from checks.base import CheckContext
from checks.tls import TlsCheck
from monitor.daemon import Daemon
from monitor.metrics import MonitorMetrics
from monitor.model import Finding, Severity, Status
from monitor.runner import run_check
from tests.integrations.helpers import by_code
from tests.net import closed_port, free_port, running_daemon, wait_until

LOCAL = "127.0.0.1"
ServeTls = Callable[[ssl.SSLContext], Awaitable[int]]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
async def serve_tls() -> AsyncIterator[ServeTls]:
    """An HTTPS server on 127.0.0.1 presenting the given context's certificate; returns its port."""
    servers: list[TestServer] = []

    async def start(context: ssl.SSLContext) -> int:
        server = TestServer(web.Application(), host=LOCAL)
        await server.start_server(ssl=context)
        servers.append(server)
        assert server.port is not None
        return server.port

    yield start
    for server in servers:
        await server.close()


def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


def self_signed_context(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOCAL)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address(LOCAL))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "self-signed.pem", tmp_path / "self-signed.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


def make_check(context: CheckContext, port: int, **config: Any) -> TlsCheck:
    settings = {"type": "tls", "host": LOCAL, "port": port, "timeout": "5s", **config}
    return TlsCheck("site", TlsCheck.Config.model_validate(settings), context)


def statuses(findings: list[Finding]) -> dict[str, tuple[Status, Severity | None]]:
    return {code: (finding.status, finding.severity) for code, finding in by_code(findings).items()}


def expiry_gauge(metrics: MonitorMetrics) -> float | None:
    return metrics.registry.get_sample_value("health_monitor_tls_cert_expiry_seconds", {"check": "site"})


def days_from_now(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


async def test_a_valid_certificate(
    ca: trustme.CA, ca_file: Path, serve_tls: ServeTls, check_context: CheckContext, metrics: MonitorMetrics
) -> None:
    port = await serve_tls(server_context(ca.issue_cert(LOCAL, not_after=days_from_now(90))))

    findings = await make_check(check_context, port, ca_file=str(ca_file)).run()

    assert statuses(findings) == {
        "cert_expiry": (Status.OK, None),
        "hostname_mismatch": (Status.OK, None),
        "untrusted": (Status.OK, None),
    }
    gauge = expiry_gauge(metrics)
    assert gauge is not None and 89 * 86400 < gauge <= 90 * 86400


@pytest.mark.parametrize(
    ("days_left", "status", "severity"),
    [(10, Status.WARNING, Severity.P3), (2, Status.CRITICAL, Severity.P2)],
)
async def test_a_certificate_close_to_expiry(
    ca: trustme.CA,
    ca_file: Path,
    serve_tls: ServeTls,
    check_context: CheckContext,
    days_left: float,
    status: Status,
    severity: Severity,
) -> None:
    port = await serve_tls(server_context(ca.issue_cert(LOCAL, not_after=days_from_now(days_left))))

    findings = by_code(await make_check(check_context, port, ca_file=str(ca_file)).run())

    expiry = findings["cert_expiry"]
    assert (expiry.status, expiry.severity) == (status, severity)
    assert expiry.summary.startswith(f"certificate of {LOCAL}:{port} expires in ")
    assert findings["untrusted"].status is Status.OK


async def test_thresholds_are_configurable(
    ca: trustme.CA, ca_file: Path, serve_tls: ServeTls, check_context: CheckContext
) -> None:
    port = await serve_tls(server_context(ca.issue_cert(LOCAL, not_after=days_from_now(20))))

    check = make_check(check_context, port, ca_file=str(ca_file), warning_days=30, critical_days=21)
    findings = by_code(await check.run())

    assert (findings["cert_expiry"].status, findings["cert_expiry"].severity) == (Status.CRITICAL, Severity.P2)


async def test_an_expired_certificate_is_p1(
    ca: trustme.CA, ca_file: Path, serve_tls: ServeTls, check_context: CheckContext, metrics: MonitorMetrics
) -> None:
    cert = ca.issue_cert(LOCAL, not_before=days_from_now(-30), not_after=days_from_now(-1))
    port = await serve_tls(server_context(cert))

    findings = by_code(await make_check(check_context, port, ca_file=str(ca_file)).run())

    expiry = findings["cert_expiry"]
    assert (expiry.status, expiry.severity) == (Status.CRITICAL, Severity.P1)
    assert expiry.summary.startswith(f"certificate of {LOCAL}:{port} expired 1d")
    # The CA is trusted: only the dates are wrong, which cert_expiry already says.
    assert findings["untrusted"].status is Status.OK
    gauge = expiry_gauge(metrics)
    assert gauge is not None and gauge < 0


async def test_a_certificate_for_another_host(
    ca: trustme.CA, ca_file: Path, serve_tls: ServeTls, check_context: CheckContext
) -> None:
    port = await serve_tls(server_context(ca.issue_cert("www.example.org", not_after=days_from_now(90))))

    findings = by_code(await make_check(check_context, port, ca_file=str(ca_file)).run())

    mismatch = findings["hostname_mismatch"]
    assert (mismatch.status, mismatch.severity) == (Status.CRITICAL, Severity.P2)
    assert mismatch.summary == f"certificate of {LOCAL}:{port} is not valid for {LOCAL}: it names www.example.org"
    assert findings["untrusted"].status is Status.OK
    assert findings["cert_expiry"].status is Status.OK


async def test_a_self_signed_certificate(
    tmp_path: Path, ca_file: Path, serve_tls: ServeTls, check_context: CheckContext
) -> None:
    port = await serve_tls(self_signed_context(tmp_path))

    findings = by_code(await make_check(check_context, port, ca_file=str(ca_file)).run())

    untrusted = findings["untrusted"]
    assert (untrusted.status, untrusted.severity) == (Status.CRITICAL, Severity.P2)
    assert "self-signed certificate" in untrusted.summary
    assert findings["hostname_mismatch"].status is Status.OK
    assert findings["cert_expiry"].status is Status.OK


async def test_untrusted_and_wrong_host_are_both_reported(
    serve_tls: ServeTls, check_context: CheckContext, ca_file: Path
) -> None:
    other_ca = trustme.CA()
    port = await serve_tls(server_context(other_ca.issue_cert("www.example.org")))

    findings = await make_check(check_context, port, ca_file=str(ca_file)).run()

    assert statuses(findings) == {
        "cert_expiry": (Status.OK, None),
        "hostname_mismatch": (Status.CRITICAL, Severity.P2),
        "untrusted": (Status.CRITICAL, Severity.P2),
    }


async def test_the_system_store_follows_ssl_cert_file(
    ca: trustme.CA,
    ca_file: Path,
    serve_tls: ServeTls,
    check_context: CheckContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = await serve_tls(server_context(ca.issue_cert(LOCAL)))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    trusted = by_code(await make_check(check_context, port).run())["untrusted"]
    monkeypatch.delenv("SSL_CERT_FILE")
    untrusted = by_code(await make_check(check_context, port).run())["untrusted"]

    assert trusted.status is Status.OK
    assert trusted.summary.endswith("is trusted by the system trust store")
    assert untrusted.status is Status.CRITICAL


async def test_a_closed_port_is_unreachable(check_context: CheckContext) -> None:
    port = closed_port()

    (finding,) = await make_check(check_context, port).run()

    assert (finding.code, finding.status, finding.severity) == ("unreachable", Status.CRITICAL, Severity.P2)
    assert finding.summary == f"cannot connect to {LOCAL}:{port}: connection refused"
    assert finding.blocks == ("*",)  # no certificate seen: its incidents neither confirm nor clear


async def test_a_port_that_does_not_speak_tls(check_context: CheckContext) -> None:
    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain_http, LOCAL, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        (finding,) = await make_check(check_context, port).run()
    finally:
        server.close()
        await server.wait_closed()

    assert (finding.code, finding.status) == ("unreachable", Status.CRITICAL)


async def test_a_server_that_never_finishes_the_handshake_times_out(check_context: CheckContext) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(silent, LOCAL, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await run_check(make_check(check_context, port), timeout=0.2)
    finally:
        server.close()
        await server.wait_closed()

    (finding,) = result.findings
    assert (finding.code, finding.status, finding.severity) == ("unreachable", Status.CRITICAL, Severity.P2)
    assert finding.summary == "no TLS handshake within 200ms (timeout)"


def test_config_mistakes_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        TlsCheck.Config.model_validate({"type": "tls", "host": "a.example", "ca_file": str(tmp_path / "missing.pem")})
    with pytest.raises(ValueError, match="critical_days must be smaller than warning_days"):
        TlsCheck.Config.model_validate({"type": "tls", "host": "a.example", "warning_days": 3, "critical_days": 7})


async def test_the_expiry_gauge_goes_with_its_check_when_a_reload_removes_it(
    ca: trustme.CA, ca_file: Path, serve_tls: ServeTls, tmp_path: Path, clean_env
) -> None:
    port = await serve_tls(server_context(ca.issue_cert(LOCAL, not_after=days_from_now(90))))
    site = f'[checks.site]\ntype = "tls"\nhost = "{LOCAL}"\nport = {port}\nca_file = "{ca_file}"\ninterval = "100ms"\n'
    other = f'[checks.other]\ntype = "tcp"\nhost = "{LOCAL}"\nport = {port}\ninterval = "100ms"\n'
    path = tmp_path / "monitor.toml"
    base = f'[monitor]\nstate_path = "{tmp_path}/state.db"\n[server]\nlisten = "127.0.0.1:{free_port()}"\n'
    path.write_text(base + site + other)
    async with running_daemon(path) as daemon:
        await wait_until(lambda: expiry_gauge(daemon.metrics) is not None, "the expiry gauge")
        path.write_text(base + other)
        await daemon.reload()
        assert "health_monitor_tls_cert_expiry_seconds{" not in (await scrape(daemon)).decode()


async def scrape(daemon: Daemon) -> bytes:
    return await daemon.metrics.scrape("text/plain", "").render()
