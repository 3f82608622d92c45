"""`health-monitor schema`: the JSON Schema of monitor.toml accepts the configs we ship and
rejects the mistakes the loader rejects. jsonschema is not a dependency (nor in .venv), so a
small validator of exactly the keywords the schema uses checks it (tests/deploy/schema_check.py)."""

import json
import sys
import tomllib
from typing import Any

import pytest

from monitor import registry
from monitor.schema import SCHEMA_DIALECT, config_json_schema
from tests.deploy.helpers import DEPLOY, REPO, clean_environment, run
from tests.deploy.schema_check import SchemaValidator


@pytest.fixture(scope="module")
def validator() -> SchemaValidator:
    schema = config_json_schema()
    json.dumps(schema)  # serialisable as it is printed
    return SchemaValidator(schema)


def toml(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


@pytest.mark.parametrize(
    "path", [REPO / "monitor.toml", DEPLOY / "container" / "monitor.toml", DEPLOY / "container" / "replicas.toml"],
    ids=lambda p: p.name,
)
def test_the_configs_we_ship_are_valid(validator: SchemaValidator, path: Any) -> None:
    assert validator.errors(tomllib.loads(path.read_text())) == []


def test_the_design_documents_example_is_valid(validator: SchemaValidator) -> None:
    config = toml("""
[monitor]
name = "sentia-production"
interval = "60s"
concurrency = 200
[server]
listen = "127.0.0.1:8573"
[severity.P1]
response = "15m"
update_every = "15m"
[checks.api]
type = "http"
url = "https://example.invalid/api/health"
expect_status = [200]
interval = "30s"
timeout = 5
failure_threshold = 2
severity = "P1"
slow = "2s"
degradation_percent = 50
severities = { slow = "P4" }
[checks.db]
type = "postgres"
dsn_env = "DATABASE_URL"
long_query = "5m"
connections_warning_percent = 80
[checks.xero]
type = "integration"
provider = "xero"
[sinks.slack-oncall]
type = "slack"
webhook_url_env = "SLACK_WEBHOOK_URL"
min_severity = "P2"
""")
    assert validator.errors(config) == []


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[monitor]\nintervall = "30s"', "monitor.intervall: unknown key"),
        ('[monitor]\ninterval = "5 minutes"', "monitor.interval"),
        ('[checks.api]\ntype = "http"\nurl = "https://x.test"\ntimout = "5s"', "checks.api"),
        ('[checks.api]\ntype = "http"', "checks.api"),
        ('[checks.api]\ntype = "smtp"', "checks.api"),
        ('[checks."bad name"]\ntype = "http"\nurl = "https://x.test"', "checks['bad name']"),
        ('[sinks.s]\ntype = "slack"\nmin_severity = "P5"', "sinks.s"),
        ('[severity.P7]\nresponse = "1h"\nupdate_every = "1h"', "severity['P7']"),
    ],
)
def test_mistakes_are_rejected(validator: SchemaValidator, text: str, where: str) -> None:
    errors = validator.errors(toml(text))
    assert errors and any(where in error for error in errors), errors


def test_every_registered_type_has_a_variant_chosen_by_its_type_key() -> None:
    schema = config_json_schema()
    assert schema["$schema"] == SCHEMA_DIALECT
    for item, group in (("check", registry.CHECK_GROUP), ("sink", registry.SINK_GROUP)):
        entry = schema["$defs"][item]
        chosen = {rule["if"]["properties"]["type"]["const"]: rule["then"]["$ref"] for rule in entry["allOf"]}
        assert set(chosen) == set(registry.available(group))
        for type_name, ref in chosen.items():
            variant = schema["$defs"][ref.removeprefix("#/$defs/")]
            assert variant["properties"]["type"]["const"] == type_name
            assert variant["additionalProperties"] is False and "type" in variant["required"]


def test_durations_and_secrets_are_described_as_users_write_them() -> None:
    schema = config_json_schema()
    interval = schema["$defs"]["MonitorSection"]["properties"]["interval"]
    assert interval["default"] == "1m"
    assert {option["type"] for option in interval["anyOf"]} == {"number", "string"}
    dsn_env = schema["$defs"]["PostgresCheckConfig"]["properties"]["dsn_env"]
    assert {"type": "string", "minLength": 1, "pattern": r"^\S+$"}.items() <= dsn_env["anyOf"][0].items()


def test_the_schema_command_prints_it() -> None:
    result = run([sys.executable, "-m", "monitor", "schema"], env=clean_environment())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(json.dumps(config_json_schema()))
