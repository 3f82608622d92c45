"""One daemon for the deploy tests that only read from it: a check that passes (its own
/healthz) and one that fails (a closed port on 127.0.0.1), so every series and the status
page have something to show."""

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.helpers import DaemonProcess, clean_environment, http_json, wait_until
from tests.net import free_port

LIVE_CHECKS = ("self", "broken")


def live_config(port: int, closed_port: int) -> str:
    return f"""
[monitor]
name = "deploy-tests"
state_path = "state/monitor.db"
incident_log = "incidents.log"

[server]
listen = "127.0.0.1:{port}"

[checks.self]
type = "http"
url = "http://127.0.0.1:{port}/healthz"
interval = "200ms"
timeout = "1s"
json_fields = {{ status = "ok" }}

[checks.broken]
type = "http"
url = "http://127.0.0.1:{closed_port}/api/health"
interval = "200ms"
timeout = "1s"
failure_threshold = 2
severity = "P1"
impact = "customers cannot <b>use</b> the app"

[sinks.file]
type = "file"
path = "alerts.log"
"""


@pytest.fixture(scope="package")
def live_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """The daemon, once both checks have run and the failing one has opened an incident."""
    workdir = tmp_path_factory.mktemp("live-daemon")
    port = free_port()
    config = workdir / "monitor.toml"
    config.write_text(live_config(port, closed_port=free_port()))
    daemon = DaemonProcess(config, port, clean_environment())
    try:
        daemon.start()
        wait_until(lambda: _checks_reported(daemon), "both checks in /metrics")
        wait_until(lambda: _incident_open(daemon), "the incident of the failing check")
        yield daemon
    finally:
        daemon.kill()


def _checks_reported(daemon: DaemonProcess) -> bool:
    families = {family.name: family for family in text_string_to_metric_families(daemon.metrics())}
    samples = families["health_monitor_check_up"].samples if "health_monitor_check_up" in families else []
    return {sample.labels["check"] for sample in samples} >= set(LIVE_CHECKS)


def _incident_open(daemon: DaemonProcess) -> bool:
    incidents = http_json(daemon.url("/api/incidents"))["incidents"]
    assert isinstance(incidents, list)
    return any(incident["key"] == "broken/down" for incident in incidents)
