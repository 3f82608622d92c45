"""deploy/prometheus against the real tools: promtool checks the config, the rules and a live
/metrics; the rule unit tests fire the monitor-down alert; a real Prometheus scrapes the
running daemon and answers queries for every check and for every dashboard panel."""

import json
import re
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.conftest import LIVE_CHECKS
from tests.deploy.helpers import DEPLOY, DaemonProcess, http_get, require, run, wait_until
from tests.net import free_port

PROMETHEUS_DIR = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "health-monitor.json"


def promtool(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run([require("promtool"), *args], input=stdin, cwd=PROMETHEUS_DIR)


def test_the_scrape_config_and_its_rule_file_are_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_the_alerting_rules_are_valid_and_cover_the_contract() -> None:
    result = promtool("check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    rules = (PROMETHEUS_DIR / "rules.yml").read_text()
    for expression in (
        'up{job="health-monitor"} == 0',
        'absent(up{job="health-monitor"})',
        "health_monitor_check_up == 0",
        'health_monitor_incidents_open{severity="P1"} > 0',
        'health_monitor_notifications_total{result=~"failed|dead"}[10m]',
        "health_monitor_notifications_pending > 50",
        "histogram_quantile(0.99, sum by (instance, le) (rate(health_monitor_scheduler_lateness_seconds_bucket",
        'max(health_monitor_leader{job="health-monitor"}) == 0',
    ):
        assert expression in rules, expression


def test_rule_unit_tests_fire_the_monitor_down_alert() -> None:
    result = promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "alertname: HealthMonitorDown" in (PROMETHEUS_DIR / "rules_test.yml").read_text()


def test_live_metrics_pass_promtool_check_metrics(live_daemon: DaemonProcess) -> None:
    exposition = live_daemon.metrics()
    result = promtool("check", "metrics", stdin=exposition)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


@dataclass
class PrometheusServer:
    port: int

    def query(self, expression: str) -> list[dict[str, object]]:
        """The result vector of an instant query; an error answer fails the test."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        status, body = http_get(url)
        answer = json.loads(body) if body.startswith("{") else {}
        assert status == 200 and answer.get("status") == "success", f"{expression}: {status} {body[:300]}"
        result: list[dict[str, object]] = answer["data"]["result"]
        return result


@pytest.fixture(scope="module")
def prometheus(live_daemon: DaemonProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus on a free loopback port, scraping the live daemon every second."""
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: health-monitor\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{live_daemon.port}']\n"
    )
    server = PrometheusServer(free_port())
    with (workdir / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                require("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{server.port}",
                "--log.level=warn",
            ],
            cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        wait_until(
            lambda: process.poll() is None and http_get(f"http://127.0.0.1:{server.port}/-/ready", 1.0)[0] == 200,
            f"Prometheus ready\n{(workdir / 'prometheus.log').read_text()[-2000:]}",
        )
        yield server
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_prometheus_scrapes_every_configured_check(prometheus: PrometheusServer) -> None:
    def scraped_checks() -> dict[str, str]:
        result = prometheus.query("health_monitor_check_up")
        return {series["metric"]["check"]: series["value"][1] for series in result}  # type: ignore[index]

    wait_until(lambda: set(scraped_checks()) >= set(LIVE_CHECKS), "a scrape with every check", timeout=30)
    checks = scraped_checks()
    assert set(checks) == set(LIVE_CHECKS)
    assert (checks["self"], checks["broken"]) == ("1", "0")
    (up,) = prometheus.query('up{job="health-monitor"}')
    assert up["value"][1] == "1"  # type: ignore[index]


def test_every_dashboard_query_is_accepted_by_prometheus(prometheus: PrometheusServer) -> None:
    wait_until(lambda: prometheus.query("health_monitor_build_info"), "a first scrape")
    for expression in dashboard_expressions():
        prometheus.query(_as_instant_query(expression))


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def _as_instant_query(expression: str) -> str:
    """Grafana's variables replaced as Grafana would, for a query straight to Prometheus."""
    expression = expression.replace("$__rate_interval", "1m")
    return re.sub(r"\$(instance|check)\b", ".*", expression)

