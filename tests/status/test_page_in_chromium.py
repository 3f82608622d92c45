"""The status page served by a running daemon with 90 days of history, read by headless
Chromium at 1280 px and at 375 px: what a person sees is asserted on the rendered DOM, and
screenshots of both widths are written next to the test's files."""

import asyncio
import base64
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from monitor.daemon import Daemon
from monitor.model import Incident, Severity
from monitor.sqlite_file import SqliteFile
from tests.conftest import ServeApp
from tests.history.seed import healthy_target, seed_history
from tests.net import LOOPBACK, closed_port, free_port, running_daemon, wait_until
from tests.store_seed import create_incident, save_incident

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
)
HOSTILE = '<img src=x onerror="alert(1)">'


def seed_incidents(state: Path, now: datetime) -> None:
    with SqliteFile(state) as store:
        resolved = create_incident(store, Incident(
            check="api", code="down", severity=Severity.P1, opened_at=now - timedelta(days=12),
            summary="GET /health failed: HTTP 503", impact="customers cannot log in",
        ))
        resolved.state, resolved.resolved_at = "resolved", now - timedelta(days=12) + timedelta(hours=4)
        resolved.resolution = "check passing again"
        save_incident(store, resolved)
        store.add_silence("worker", now - timedelta(minutes=1), now + timedelta(hours=2), "queue migration")


@pytest.fixture
async def daemon(tmp_path: Path, serve: ServeApp) -> AsyncIterator[Daemon]:
    target = await serve(healthy_target())
    now = datetime.now(UTC)
    state = tmp_path / "state.db"
    seed_history(state, now)
    seed_incidents(state, now)
    port = free_port()
    config = tmp_path / "monitor.toml"
    config.write_text(f"""
[monitor]
name = "sentia-production"
state_path = "{state}"
incident_log = "{tmp_path}/incidents.log"
postmortem_dir = "{tmp_path}/postmortems"
interval = "1s"

[server]
listen = "{LOOPBACK}:{port}"

[[maintenance]]
name = "legacy retirement"
checks = ["legacy"]
start = {(now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
end = {(now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}

[checks.api]
type = "http"
url = "http://{LOOPBACK}:{target.port}/health"

[checks.broken]
type = "http"
url = "http://{LOOPBACK}:{closed_port()}/health"
failure_threshold = 1
impact = "customers cannot <b>pay</b>"

[checks.worker]
type = "tcp"
host = "{LOOPBACK}"
port = {closed_port()}
failure_threshold = 1

[checks.legacy]
type = "tcp"
host = "{LOOPBACK}"
port = {closed_port()}

[checks.backup]
type = "heartbeat"
period = "1d"
interval = "1s"

[sinks.console]
type = "console"
""")
    async with running_daemon(config) as running:
        log = f"dumping sentia_prod\n{HOSTILE}\npg_dump: error: could not write to file: No space left on device\n"
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://{LOOPBACK}:{port}/ping/backup/1", data=log) as response,
        ):
            assert response.status == 200
        keys = {"broken/down", "backup/failed"}
        await wait_until(lambda: keys <= {i.key for i in running.incidents.open_incidents}, "both incidents", 30)
        await wait_until(lambda: {"api", "legacy", "worker"} <= set(running.last_runs), "every check to run")
        yield running


async def chromium(profile: Path, *arguments: str) -> str:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium not found: install Debian's chromium package (dev.sh system_packages)")
    process = await asyncio.create_subprocess_exec(
        binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()[-3000:]
    return stdout.decode()


def card(dom: str, check: str) -> str:
    match = re.search(rf'<li class="check [^"]*" data-check="{check}">(.*?)</li>', dom, re.S)
    assert match, f"no card for {check}"
    return match.group(1)


async def test_the_page_shows_state_uptime_history_and_incidents(
    daemon: Daemon, tmp_path: Path
) -> None:
    url = f"http://{daemon.config.server.listen}/"
    dom = await chromium(tmp_path / "profile-dom", "--window-size=1280,2400", "--dump-dom", url)

    assert re.search(r'id="overall">critical<', dom)
    assert re.search(r'id="headline">4 checks failing \(2 silenced or in maintenance\)<', dom)
    assert [h2 for h2 in re.findall(r"<h2 [^>]*>(.*?)</h2>", dom)] == [
        "Checks", "Open incidents", "Incident history (last 30 days)"
    ]

    api = card(dom, "api")
    assert ">ok</span>" in api
    uptime = dict(re.findall(r'<dd data-window="(\w+)">([^<]*)</dd>', api))
    assert uptime["24h"] == "100.00%" and uptime["7d"] == "100.00%"
    # 48 of the runs failed 12 days ago: a larger share of 30 days' runs than of 90 days'.
    assert 99.0 < float(uptime["30d"].rstrip("%")) < float(uptime["90d"].rstrip("%")) < 100
    bars = re.findall(r'<rect class="(\w+)"[^>]*><title>([^<]*)</title></rect>', api)
    assert len(bars) == 90
    assert sum(level == "bad" for level, _ in bars) == 1, "the outage day"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d: 83\.33% uptime \(288 runs\)", next(t for lvl, t in bars if lvl == "bad"))
    assert re.search(r'aria-label="Daily uptime of api over the last 90 days"', api)
    spark = r'<svg class="spark"[^>]*aria-label="Latency over the last 24 hours: average [^"]+, peak 400ms"'
    assert re.search(spark, api)
    assert re.search(r'<path d="M0\.0 [\d.]+( L[\d.]+ [\d.]+)+"', api), "a drawn sparkline"

    assert "silenced</span>" in card(dom, "worker") and "in maintenance</span>" in card(dom, "legacy")
    backup = card(dom, "backup")
    assert ">critical</span>" in backup and "Last ping <b>fail (exit 1)" in backup

    failed = re.search(r'<article class="incident" data-incident="\d+">\s*<h3>.*?backup/failed</h3>(.*?)</article>',
                       dom, re.S)
    assert failed, "the failed backup's incident"
    assert "No space left on device" in failed.group(1) and "Evidence" in failed.group(1)
    assert "&lt;img src=x onerror=" in failed.group(1) and "<img" not in dom, "the log is escaped"
    assert "<ol class=\"timeline\">" in failed.group(1)
    assert "customers cannot &lt;b&gt;pay&lt;/b&gt;" in dom
    history = re.search(r'<table class="history" id="resolved-incidents">(.*?)</table>', dom, re.S)
    assert history and "api/down" in history.group(1) and "4h" in history.group(1)



async def test_the_inline_script_swaps_fresh_data_in_without_a_reload(daemon: Daemon, tmp_path: Path) -> None:
    url = f"http://{daemon.config.server.listen}/"
    dom = await chromium(tmp_path / "profile", "--virtual-time-budget=65000", "--dump-dom", url)
    assert re.search(r'<html lang="en" data-refreshes="[12]">', dom), dom[:300]
    assert re.search(r'data-check="api"', dom), "the data is still there after the swap"


async def evaluate_in_page(profile: Path, url: str, width: int, expression: str, shot: Path | None = None) -> object:
    """Load `url` in headless Chromium `width` px wide and evaluate `expression` there, over the
    DevTools protocol; with `shot`, also a full-page screenshot into that file."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium not found: install Debian's chromium package (dev.sh system_packages)")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
        f"--window-size={width},800", url, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as http:
            pages: list[dict[str, str]] = []

            async def listed() -> bool:
                try:
                    async with http.get(f"http://{LOOPBACK}:{port}/json/list") as response:
                        pages[:] = [t for t in await response.json() if t["type"] == "page" and t["url"] == url]
                except aiohttp.ClientError:
                    return False
                return bool(pages)

            for _ in range(300):
                if await listed():
                    break
                await asyncio.sleep(0.1)
            assert pages, "Chromium opened no page"
            async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                sent = 0

                async def call(method: str, **params: object) -> dict[str, object]:
                    nonlocal sent
                    sent += 1
                    await ws.send_json({"id": sent, "method": method, "params": params})
                    while (answer := await ws.receive_json()).get("id") != sent:
                        pass
                    assert "error" not in answer, answer
                    return answer["result"]

                # Headless windows are at least 500 px wide: the phone is emulated, then the page reloaded.
                await call("Emulation.setDeviceMetricsOverride", width=width, height=800, deviceScaleFactor=1,
                           mobile=width < 600)
                await call("Page.reload", ignoreCache=True)
                for _ in range(100):
                    result = await call("Runtime.evaluate", returnByValue=True, expression=(
                        f"document.readyState === 'complete' && document.querySelector('main') ? ({expression}) : null"
                    ))
                    value = result["result"].get("value")  # type: ignore[union-attr]
                    if value is not None:
                        if shot is not None:
                            image = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                            shot.write_bytes(base64.b64decode(str(image["data"])))
                        return value
                    await asyncio.sleep(0.1)
        raise AssertionError("the page never finished loading")
    finally:
        process.kill()
        await process.wait()


LAYOUT = """(() => {
    const texts = [...document.querySelectorAll("header *, main *")].filter(e =>
        [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) && e.getClientRects().length);
    const rgb = c => c.match(/[\\d.]+/g).map(Number);
    const lum = c => { const v = rgb(c).slice(0, 3).map(x => x / 255)
        .map(x => x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4);
        return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
    const background = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
        if (rgb(c)[3] !== 0) return c; } return "rgb(255, 255, 255)"; };
    const contrast = e => { const [a, b] = [lum(getComputedStyle(e).color), lum(background(e))];
        return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); };
    return {
        viewport: window.innerWidth,
        page: document.documentElement.scrollWidth,
        wider: [...document.querySelectorAll("main *, header *")]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .map(e => e.tagName + "." + e.className).slice(0, 5),
        smallest_text: Math.min(...texts.map(e => parseFloat(getComputedStyle(e).fontSize))),
        low_contrast: texts.filter(e => contrast(e) < 4.5).map(e => e.tagName + "." + e.className + ": "
            + e.textContent.trim().slice(0, 30) + " " + contrast(e).toFixed(2)).slice(0, 5),
        unlabelled_images: [...document.querySelectorAll("svg, img")]
            .filter(e => !(e.getAttribute("aria-label") || e.getAttribute("alt"))).length,
    };
})()"""


@pytest.mark.parametrize("width", [1280, 375])
async def test_readable_and_accessible_at_desktop_and_phone_widths(daemon: Daemon, tmp_path: Path, width: int) -> None:
    """Laid out by Chromium: nothing wider than the screen, no text under 12 px, every text at least
    4.5:1 against its background (WCAG AA), every chart labelled. The screenshot stays in tmp_path."""
    url = f"http://{daemon.config.server.listen}/"
    shot = tmp_path / f"status-{width}.png"
    found = await evaluate_in_page(tmp_path / "profile", url, width, LAYOUT, shot=shot)
    assert isinstance(found, dict)
    assert found["viewport"] == width and found["page"] <= width, found
    assert found["wider"] == [], found
    assert found["smallest_text"] >= 12, found
    assert found["low_contrast"] == [], found
    assert found["unlabelled_images"] == 0, found
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")
