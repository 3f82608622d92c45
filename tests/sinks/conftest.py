"""Real peers for the sink tests, all on 127.0.0.1: an SMTP server (aiosmtpd) in plain,
STARTTLS and implicit-TLS modes with a trustme CA, and a real Prometheus Alertmanager."""

import asyncio
import email
import shutil
import ssl
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from alerting.base import SinkContext
from monitor.clock import SystemClock
from tests.net import free_port

LOOPBACK = "127.0.0.1"
SMTP_USER = "monitor"
SMTP_PASSWORD = "smtp-pa55word-never-shown"
ALERTMANAGER_BINARY = "/usr/bin/prometheus-alertmanager"
_CLOSE_GRACE_SECONDS = 0.05



@pytest.fixture
def sink_context(http_session: aiohttp.ClientSession) -> SinkContext:
    return SinkContext(http_session, SystemClock())


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOOPBACK, "localhost").configure_cert(context)
    return context


@dataclass(frozen=True)
class Delivered:
    sender: str
    recipients: list[str]
    message: EmailMessage
    login: str | None

    def part(self, content_type: str) -> str:
        body = self.message.get_body(preferencelist=(content_type.split("/")[1],))
        assert body is not None and body.get_content_type() == content_type
        return str(body.get_content()).replace("\r\n", "\n")


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message, refusing the recipients and DATA
    replies it is told to."""

    refuse: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    delivered: list[Delivered] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        message = email.message_from_bytes(envelope.original_content or b"", policy=default_policy)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.delivered.append(Delivered(str(envelope.mail_from), list(envelope.rcpt_tos), message, login))
        return "250 Message accepted"


def _authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox


StartSmtp = Callable[..., SmtpServer]


@pytest.fixture
async def smtp_server(server_tls: ssl.SSLContext) -> AsyncIterator[StartSmtp]:
    """Start an SMTP server: security "none", "starttls" (required, and AUTH required over
    TLS when `auth`) or "tls" (implicit TLS)."""
    controllers: list[Controller] = []

    def start(security: str = "none", *, auth: bool = False) -> SmtpServer:
        mailbox = Mailbox()
        port = free_port()
        options: dict[str, Any] = {}
        if security == "starttls":
            options = {"tls_context": server_tls, "require_starttls": True}
        elif security == "tls":
            options = {"ssl_context": server_tls}
        if auth:
            options |= {"authenticator": _authenticate, "auth_required": True, "auth_require_tls": True}
        controller = Controller(mailbox, hostname=LOOPBACK, port=port, **options)
        controller.start()
        controllers.append(controller)
        return SmtpServer(port, mailbox)

    yield start
    # aiosmtplib closes its connection without waiting for it to close (a TLS close needs
    # a round trip): give it a moment before the test's event loop is closed under it.
    await asyncio.sleep(_CLOSE_GRACE_SECONDS)
    for controller in controllers:
        controller.stop()


@dataclass(frozen=True)
class Alertmanager:
    url: str

    async def alerts(self, http: aiohttp.ClientSession, monitor: str) -> list[dict[str, Any]]:
        """The alerts Alertmanager lists for one monitor label (by default only unresolved ones)."""
        params = {"filter": f'monitor="{monitor}"'}
        async with http.get(f"{self.url}/api/v2/alerts", params=params) as response:
            response.raise_for_status()
            return list(await response.json())

    async def wait_for(
        self, http: aiohttp.ClientSession, monitor: str, condition: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        """Poll the listed alerts until `condition` holds, for at most five seconds."""
        deadline = time.monotonic() + 5
        while True:
            alerts = await self.alerts(http, monitor)
            if condition(alerts) or time.monotonic() > deadline:
                return alerts
            await asyncio.sleep(0.05)


ALERTMANAGER_CONFIG = """\
route:
  receiver: "null"
receivers:
  - name: "null"
"""


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    """A real Alertmanager on a free loopback port, clustering off, with a null receiver."""
    binary = shutil.which(ALERTMANAGER_BINARY)
    if binary is None:
        pytest.fail(
            f"{ALERTMANAGER_BINARY} not found: install Debian's package with "
            "`apt-get install -y prometheus-alertmanager` to run the Alertmanager sink tests"
        )
    workdir = tmp_path_factory.mktemp("alertmanager")
    (workdir / "alertmanager.yml").write_text(ALERTMANAGER_CONFIG)
    port = free_port()
    log = workdir / "alertmanager.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'alertmanager.yml'}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"http://{LOOPBACK}:{port}"
    try:
        _wait_until_ready(url, process, log)
        yield Alertmanager(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Alertmanager exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"Alertmanager did not become ready within 15s: {log.read_text()[-2000:]}")
