"""What an editor shows for a mistake in monitor.toml, as a real JSON Schema validator
(jsonschema, the one editors' language servers follow) reports it."""

import tomllib

import pytest
from jsonschema import Draft202012Validator

from monitor.schema import config_json_schema

CHECK = '[checks.api]\ntype = "http"\nurl = "https://example.test/health"\n'
SINK = '[sinks.oncall]\ntype = "slack"\nwebhook_url_env = "SLACK_WEBHOOK_URL"\n'


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = config_json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors(validator: Draft202012Validator, text: str) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(tomllib.loads(text))]


def test_a_valid_check_and_sink_have_no_errors(validator) -> None:
    assert errors(validator, CHECK + SINK) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CHECK + 'timout = "5s"\n', "checks.api: Additional properties are not allowed ('timout' was unexpected)"),
        (SINK + "min_severity = 'P9'\n", "sinks.oncall.min_severity: 'P9' is not one of ['P1', 'P2', 'P3', 'P4']"),
    ],
)
def test_a_typo_inside_a_table_is_one_precise_error(validator, text, expected) -> None:
    assert errors(validator, text) == [expected]


def test_an_unknown_type_is_one_error_naming_the_known_ones(validator) -> None:
    (error,) = errors(validator, CHECK.replace('"http"', '"htp"'))
    assert error.startswith("checks.api.type: 'htp' is not one of [")
