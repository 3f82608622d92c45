"""No secret leaves the monitor (issue 10, failure 4): a check URL with userinfo and a
`?token=` (aiohttp's real_url drops the userinfo, so the old replace missed the token), a
target that echoes its request (headers_env values, Basic credentials, query tokens) into
the body evidence, and a Slack receiver whose error echoes the webhook path. Asserted on
every output channel: the sinks, /api/incidents, the status page, /metrics, incidents.log,
the log lines, the outbox and `once --format json`."""

import asyncio
import base64
import json
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web

from checks.base import CheckContext
from checks.http import HttpCheck
from monitor import logs
from monitor.cli import main
from monitor.sqlite_file import SqliteFile
from tests.net import free_port, running_daemon, wait_until

HEADER_SECRET = "hdr-secret-value-9"
URL_PASSWORD = "url-pass-77"
QUERY_TOKEN = "qtok-secret-55"
SLACK_PATH_SECRET = "slack-path-secret-33"
BASIC = base64.b64encode(f"echo-user:{URL_PASSWORD}".encode()).decode()
SECRETS = (HEADER_SECRET, URL_PASSWORD, QUERY_TOKEN, SLACK_PATH_SECRET, BASIC)


def assert_clean(text: str, channel: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"{channel} shows {leaked}"


async def test_an_invalid_response_names_the_url_without_its_token(check_context: CheckContext) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 abc garbage\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://echo-user:{URL_PASSWORD}@127.0.0.1:{port}/health?token={QUERY_TOKEN}"
    config = HttpCheck.Config.model_validate({"type": "http", "url": url, "timeout": 2})
    async with server:
        (finding,) = await HttpCheck("garbage", config, check_context).run()

    assert "invalid response" in finding.summary
    assert_clean(json.dumps([finding.summary, *finding.evidence]), "the finding")


async def echo(request: web.Request) -> web.Response:
    lines = [
        f"{request.method} {request.path_qs}",
        f"Authorization: {request.headers.get('Authorization', '')}",
        f"X-Api-Key: {request.headers.get('X-Api-Key', '')}",
    ]
    return web.Response(status=500, text="debug page\n" + "\n".join(lines))


class SlackEcho:
    """A Slack webhook that first fails with an error echoing its own path, then accepts."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.failed = False

    async def handle(self, request: web.Request) -> web.Response:
        if not self.failed:
            self.failed = True
            return web.Response(status=500, text=f"internal_error on {request.path}")
        self.received.append(await request.text())
        return web.Response(text="ok")


async def test_no_secret_reaches_any_output_channel(tmp_path: Path, serve, clean_env, monkeypatch, capsys) -> None:
    target = web.Application()
    target.router.add_get("/echo", echo)
    target_port = (await serve(target)).port
    slack = SlackEcho()
    slack_app = web.Application()
    slack_app.router.add_post("/services/T0/B0/{secret}", slack.handle)
    slack_port = (await serve(slack_app)).port
    webhook: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        webhook.append(await request.text())
        return web.Response(text="ok")

    hook_app = web.Application()
    hook_app.router.add_post("/hook", hook)
    hook_port = (await serve(hook_app)).port
    monkeypatch.setenv("ECHO_KEY", HEADER_SECRET)
    monkeypatch.setenv("SLACK_URL", f"http://127.0.0.1:{slack_port}/services/T0/B0/{SLACK_PATH_SECRET}")
    monkeypatch.setenv("HOOK_URL", f"http://127.0.0.1:{hook_port}/hook")
    port = free_port()
    path = tmp_path / "monitor.toml"
    path.write_text(
        f"""
[monitor]
state_path = "{tmp_path}/state.db"
incident_log = "{tmp_path}/incidents.log"
postmortem_dir = "{tmp_path}/postmortems"
[server]
listen = "127.0.0.1:{port}"
[checks.echo]
type = "http"
url = "http://echo-user:{URL_PASSWORD}@127.0.0.1:{target_port}/echo?token={QUERY_TOKEN}"
headers_env = {{ X-Api-Key = "ECHO_KEY" }}
interval = "200ms"
failure_threshold = 1
[sinks.slack]
type = "slack"
webhook_url_env = "SLACK_URL"
[sinks.hook]
type = "webhook"
url_env = "HOOK_URL"
[sinks.file]
type = "file"
path = "{tmp_path}/alerts.log"
"""
    )
    logs.configure("info", json=True)
    base = f"http://127.0.0.1:{port}"
    try:
        async with running_daemon(path) as daemon:
            await wait_until(
                lambda: slack.received and webhook, "the page to reach Slack, after a retry, and the webhook"
            )
            (incident,) = daemon.incidents.open_incidents
            assert any(line.startswith("body: debug page") for line in incident.evidence)
            async with aiohttp.ClientSession() as session:
                pages = {}
                for page in ("/api/incidents", f"/api/incidents/{incident.id}", "/", "/metrics"):
                    async with session.get(base + page) as response:
                        pages[page] = await response.text()
        logged = capsys.readouterr()
    finally:
        structlog.reset_defaults()

    assert "***" in incident.summary + "".join(incident.evidence)
    for channel, text in {
        "Slack": "".join(slack.received),
        "the webhook": "".join(webhook),
        "the logfile sink": (tmp_path / "alerts.log").read_text(),
        "incidents.log": (tmp_path / "incidents.log").read_text(),
        **pages,
        "the log lines": logged.err + logged.out,
    }.items():
        assert_clean(text, channel)
    assert "notification.retry" in logged.err + logged.out
    with SqliteFile(tmp_path / "state.db") as store:
        stored = [d.document for i in store.recent_incidents() for d in store.deliveries_for(i.id)]
        stored += [i.model_dump_json() for i in store.recent_incidents()]
    assert_clean("".join(stored), "the state store")

    # once runs its own event loop; the echo target answers from this one meanwhile.
    assert await asyncio.to_thread(main, ["once", "--config", str(path), "--format", "json"]) != 0
    once = capsys.readouterr().out
    assert "debug page" in once and "***" in once
    assert_clean(once, "once --format json")
