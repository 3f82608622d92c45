"""The status page at GET /: rendered from plain data with everything escaped, and, served by
the running daemon, read by a real headless Chromium that sees the failing check failing."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from checks.http import HttpCheckConfig
from monitor.model import Finding, Incident, Severity, Status
from monitor.runner import RunResult
from monitor.status_page import CheckRow, LastRun, check_rows, render_status_page
from tests.deploy.helpers import ARTIFACTS, DaemonProcess, require, run

NOW = datetime(2026, 11, 26, 19, 30, tzinfo=UTC)
HOSTILE = '<script>alert("owned")</script><!channel> & "quotes"'


def incident(number: int, **changes: object) -> Incident:
    fields: dict[str, object] = {
        "id": number,
        "check": "api",
        "code": "down",
        "severity": Severity.P1,
        "opened_at": NOW - timedelta(minutes=7, seconds=30),
        "summary": "GET https://app.example.com/api/health failed: HTTP 503, expected 2xx",
        "impact": "customers cannot use the app",
    }
    return Incident.model_validate({**fields, **changes})


def page(**overrides: object) -> str:
    arguments: dict[str, object] = {
        "monitor": "sentia-production",
        "checks": [],
        "open_incidents": [],
        "resolved_incidents": [],
        "now": NOW,
    }
    return render_status_page(**{**arguments, **overrides})  # type: ignore[arg-type]


def row_of(html: str, check: str) -> str:
    match = re.search(rf'<li class="check [^"]*" data-check="{re.escape(check)}">(.*?)</li>', html, re.S)
    assert match, f"no row for {check}"
    return match.group(0)


def test_a_failing_check_is_shown_failing_and_first() -> None:
    rows = [
        CheckRow("db", "postgres", 60, Status.OK, 0.012, NOW - timedelta(seconds=20), "42 connections"),
        CheckRow("api", "http", 30, Status.CRITICAL, 5.0, NOW - timedelta(seconds=3), "HTTP 503, expected 2xx"),
        CheckRow("xero", "integration", 300),
    ]
    html = page(checks=rows)
    assert html.index('data-check="api"') < html.index('data-check="db"') < html.index('data-check="xero"')
    api = row_of(html, "api")
    assert 'class="check check-critical"' in api and ">critical</span>" in api
    assert "5s" in api and "3s ago" in api and "HTTP 503" in api
    assert ">ok</span>" in row_of(html, "db") and "12ms" in row_of(html, "db")
    assert ">pending</span>" in row_of(html, "xero") and "never" in row_of(html, "xero")
    assert '<span class="badge status-critical" id="overall">critical</span>' in html


def test_untrusted_text_is_escaped_everywhere() -> None:
    hostile = incident(7, summary=HOSTILE, impact=f"{HOSTILE} (impact)", check="api<x>")
    hostile.record(NOW, "opened", HOSTILE)
    resolved = incident(3, state="resolved", resolved_at=NOW - timedelta(hours=1), resolution=HOSTILE)
    html = page(
        monitor="<b>prod</b>",
        checks=[CheckRow('ap"i', "http", 30, Status.CRITICAL, 0.1, NOW, HOSTILE)],
        open_incidents=[hostile],
        resolved_incidents=[resolved],
    )
    assert html.count("<script>") == 1, "the page's own refresh script only"
    assert "<script>alert" not in html and "<!channel>" not in html and "<b>prod</b>" not in html
    assert html.count("&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;&lt;!channel&gt; &amp; &#34;quotes&#34;") == 5
    assert 'data-check="ap&#34;i"' in html and "api&lt;x&gt;/down" in html


def test_open_incidents_show_severity_age_and_timeline_and_resolved_ones_their_outcome() -> None:
    p2 = incident(4, severity=Severity.P2, code="degraded", opened_at=NOW - timedelta(hours=2, minutes=5))
    p1 = incident(5)
    p1.record(NOW - timedelta(minutes=7, seconds=30), "opened", "Incident detected - [P1] api")
    p1.record(NOW - timedelta(minutes=2), "severity_raised", "P2 -> P1")
    resolved = incident(2, code="slow", state="resolved", resolved_at=NOW - timedelta(minutes=50),
                        opened_at=NOW - timedelta(hours=1), resolution="check passing again")
    html = page(open_incidents=[p2, p1], resolved_incidents=[resolved])
    assert html.index('data-incident="5"') < html.index('data-incident="4"'), "P1 before P2"
    assert "7m 30s" in html and "2h 5m" in html
    assert "2026-11-26 19:28:00Z</time><strong>severity_raised</strong> P2 -&gt; P1" in html
    assert re.search(r'data-incident="2">.*?10m.*?check passing again', html, re.S)
    assert "Escalation <b>-</b>" in html, "not escalated nor acknowledged yet: shown as -"
    assert '<noscript><meta http-equiv="refresh" content="30"></noscript>' in html


def test_escalation_level_and_acknowledgement_are_shown() -> None:
    escalated = incident(8, escalation_level=2)
    taken = incident(9, escalation_level=1, acknowledged_at=NOW, acknowledged_by="<alice>")
    html = page(open_incidents=[escalated, taken])
    assert "Escalation <b>level 2</b>" in html
    assert "Escalation <b>level 1, acknowledged by &lt;alice&gt;</b>" in html


def test_the_page_stands_alone() -> None:
    html = page(checks=[CheckRow("api", "http", 30)])
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|\burl\(|https?://(?!www\.w3\.org/2000/svg)", html), "an asset"
    assert html.count("<script") == 1 and "<script>" in html, "only the inline refresh script"
    assert "No open incidents." in html and "No incident in the last 30 days." in html


def test_check_rows_come_from_the_last_run_of_each_configured_check() -> None:
    configs = {
        "api": HttpCheckConfig(type="http", url="https://app.example.com/health", interval=30),
        "web": HttpCheckConfig(type="http", url="https://example.com/", interval=60),
    }
    findings = [
        Finding("slow", Status.WARNING, "2.5s, slower than 2s"),
        Finding("down", Status.CRITICAL, "HTTP 503"),
    ]
    last = {"api": LastRun(RunResult("api", findings, 2.5), NOW), "gone": LastRun(RunResult("gone", [], 1), NOW)}
    api, web = check_rows(configs, last)
    assert (api.status, api.latency_seconds, api.last_run, api.summary) == (Status.CRITICAL, 2.5, NOW, "HTTP 503")
    assert (web.name, web.status, web.interval_seconds) == ("web", None, 60)


def chromium(*arguments: str, profile: Path) -> str:
    """Headless Chromium kept on loopback: no background, component or sync traffic."""
    result = run(
        [
            require("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}", *arguments,
        ],
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_chromium_renders_the_live_page_with_the_failing_check(live_daemon: DaemonProcess, tmp_path: Path) -> None:
    dom = chromium("--dump-dom", live_daemon.url("/"), profile=tmp_path / "profile-dom")
    assert ">critical</span>" in row_of(dom, "broken"), dom[:3000]
    assert ">ok</span>" in row_of(dom, "self")
    assert "broken/down" in dom and "P1" in dom
    assert "customers cannot &lt;b&gt;use&lt;/b&gt; the app" in dom

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "status-page.png"
    screenshot.unlink(missing_ok=True)
    chromium(f"--screenshot={screenshot}", "--window-size=1280,900", "--hide-scrollbars", live_daemon.url("/"),
             profile=tmp_path / "profile-shot")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10_000, "a blank page"
