"""deploy/prometheus/alertmanager.yml against Alertmanager's own amtool: the config loads, and
every alert health-monitor can raise, the daemon's P1..P4 incidents and the rules of rules.yml,
reaches the paging receiver (P1, P2) or the ticket receiver (P3, P4)."""

import re

import pytest

from monitor.model import Severity
from tests.deploy.helpers import DEPLOY, require, run

PROMETHEUS_DIR = DEPLOY / "prometheus"
RECEIVER_OF = {"P1": "page", "P2": "page", "P3": "ticket", "P4": "ticket"}


def routed_to(*labels: str) -> str:
    """The receivers amtool resolves the label set to, as it prints them."""
    result = run(
        [require("amtool"), "config", "routes", "test", "--config.file=alertmanager.yml", *labels],
        cwd=PROMETHEUS_DIR,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def rule_severities() -> dict[str, str]:
    """Alert name to its severity label, for every rule of rules.yml."""
    text = (PROMETHEUS_DIR / "rules.yml").read_text()
    pairs = re.findall(r"- alert: (\w+)\n(?:.*\n)*?\s+severity: (\S+)", text)
    assert len(pairs) == text.count("- alert:"), "a rule without a severity label"
    return dict(pairs)


def test_amtool_accepts_the_config() -> None:
    result = run([require("amtool"), "check-config", "alertmanager.yml"], cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_severity_is_routed() -> None:
    assert set(RECEIVER_OF) == {severity.value for severity in Severity}


@pytest.mark.parametrize("severity", sorted(RECEIVER_OF))
def test_an_incident_from_the_daemon_reaches_its_receiver(severity: str) -> None:
    labels = [
        "alertname=HealthMonitorIncident", f"severity={severity}", "check=api", "code=down", "monitor=production",
    ]
    assert routed_to(*labels) == RECEIVER_OF[severity]


@pytest.mark.parametrize(("alertname", "severity"), sorted(rule_severities().items()))
def test_every_prometheus_rule_reaches_the_receiver_of_its_severity(alertname: str, severity: str) -> None:
    assert severity in RECEIVER_OF, f"{alertname}: severity {severity} is not one of P1..P4"
    assert routed_to(f"alertname={alertname}", f"severity={severity}", "instance=monitor:8573") == RECEIVER_OF[severity]


def test_an_alert_without_a_severity_still_reaches_a_receiver() -> None:
    assert routed_to("alertname=SomethingElse") == "ticket"
