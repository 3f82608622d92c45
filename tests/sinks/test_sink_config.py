"""The four sinks as a user configures them in monitor.toml: accepted with their documented
defaults, built by the registry, and secrets named by environment variable only."""

import pytest

from alerting.alertmanager import AlertmanagerSink
from alerting.email import EmailSink
from alerting.pagerduty import EVENTS_V2_URL, PagerDutySink
from alerting.webhook import WebhookSink
from monitor import registry
from monitor.config import ConfigError, load_config

CONFIG = """
[sinks.email-leads]
type = "email"
smtp_host = "smtp.example.com"
from = "monitor@example.com"
to = ["leads@example.com"]

[sinks.ops-webhook]
type = "webhook"
url_env = "OPS_WEBHOOK_URL"
secret_env = "OPS_WEBHOOK_SECRET"

[sinks.alertmanager]
type = "alertmanager"
url = "http://127.0.0.1:9093"

[sinks.pagerduty]
type = "pagerduty"
routing_key_env = "PAGERDUTY_ROUTING_KEY"
min_severity = "P2"
"""


@pytest.fixture
def secrets(monkeypatch) -> None:
    monkeypatch.setenv("OPS_WEBHOOK_URL", "https://hooks.example.com/secret-path")
    monkeypatch.setenv("OPS_WEBHOOK_SECRET", "hmac-key")
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "R0UT1NGKEY0123456789abcdefABCDEF")


def test_every_new_sink_loads_with_its_defaults(write_config, clean_env, secrets, sink_context) -> None:
    sinks = load_config(write_config(CONFIG)).sinks
    built = {name: registry.create_sink(name, config, sink_context) for name, config in sinks.items()}
    assert [type(sink) for sink in built.values()] == [EmailSink, WebhookSink, AlertmanagerSink, PagerDutySink]

    email, webhook, alertmanager, pagerduty = sinks.values()
    assert (email.smtp_port, email.security, email.username, email.ca_file) == (25, "none", None, None)
    assert str(webhook.url_env) == "$OPS_WEBHOOK_URL"
    assert (alertmanager.alertname, alertmanager.resend_interval) == ("HealthMonitorIncident", 60.0)
    assert alertmanager.alerts_url == "http://127.0.0.1:9093/api/v2/alerts"
    assert pagerduty.url == EVENTS_V2_URL


def test_an_unset_secret_variable_is_named_in_the_error(write_config, clean_env, secrets, monkeypatch) -> None:
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY")
    with pytest.raises(ConfigError) as invalid:
        load_config(write_config(CONFIG))
    assert invalid.value.problems == [
        "sinks.pagerduty.routing_key_env: environment variable PAGERDUTY_ROUTING_KEY is not set"
    ]
