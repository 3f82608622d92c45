"""`[context]` in monitor.toml: the single-service form, named entries, and clear errors."""

from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import ConfigError, load_config

CHECKS = """
[checks.api]
type = "http"
url = "http://127.0.0.1:9/api"

[checks.worker]
type = "http"
url = "http://127.0.0.1:9/worker"
"""
RAILWAY_KEYS = 'token_env = "RAILWAY_TOKEN"\nproject_id = "p"\nenvironment_id = "e"\n'


@pytest.fixture(autouse=True)
def _tokens(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    monkeypatch.setenv("RAILWAY_TOKEN", "rw-token-0123456789")
    monkeypatch.setenv("SENTRY_TOKEN", "sentry-token-0123456789")


def problems(write_config: Callable[[str], Path], body: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_config(write_config(CHECKS + body))
    return raised.value.problems


def test_the_single_service_form_covers_every_check_by_default(write_config: Callable[[str], Path]) -> None:
    config = load_config(write_config(CHECKS + f"""
[context]
timeout = "2s"
[context.railway]
{RAILWAY_KEYS}service_id = "svc-web"
[context.sentry]
token_env = "SENTRY_TOKEN"
organization = "acme"
project = "web"
checks = ["api"]
"""))
    context = config.settings.context
    assert context.timeout == 2.0 and context.suspect_window == 1800.0
    assert context.railway_for("worker") == ("default", context.railway["default"])
    assert context.sentry_for("api") is not None and context.sentry_for("worker") is None


def test_named_entries_pick_the_service_of_each_check(write_config: Callable[[str], Path]) -> None:
    config = load_config(write_config(CHECKS + f"""
[context.railway.web]
{RAILWAY_KEYS}service_id = "svc-web"
checks = ["api"]
[context.railway.worker]
{RAILWAY_KEYS}service_id = "svc-worker"
checks = ["worker"]
"""))
    context = config.settings.context
    assert context.railway_for("api")[1].service_id == "svc-web"  # type: ignore[index]
    assert context.railway_for("worker")[1].service_id == "svc-worker"  # type: ignore[index]


@pytest.mark.parametrize(("body", "expected"), [
    (f'[context.railway]\n{RAILWAY_KEYS}service_id = "s"\nchecks = ["apii"]\n',
     "context.railway.checks: no check named 'apii'"),
    (f'[context.railway.web]\n{RAILWAY_KEYS}service_id = "s"\nchecks = ["nope"]\n',
     "context.railway.web.checks: no check named 'nope'"),
    (f'[context.railway]\n{RAILWAY_KEYS}', "context.railway.default.service_id: required key missing"),
    ('[context.railway]\nproject_id = "p"\nenvironment_id = "e"\nservice_id = "s"\n',
     "context.railway.default: give exactly one of token_env and project_token_env"),
    (f'[context.railway]\n{RAILWAY_KEYS}service_id = "s"\n[context.railway.web]\n{RAILWAY_KEYS}service_id = "t"\n',
     "context.railway: give either one entry's keys or [NAME] sub-tables, not both"),
    ('[context.sentry]\ntoken_env = "SENTRY_TOKEN"\norganization = "acme"\n',
     "context.sentry.default: give exactly one of project and project_id"),
    ('[context.sentry]\ntoken_env = "SENTRY_TOKN"\norganization = "acme"\nproject_id = 1\n',
     "context.sentry.default.token_env: environment variable SENTRY_TOKN is not set"),
    ('[context]\ntimeot = "5s"\n', "context.timeot: unknown key; did you mean `timeout`?"),
])
def test_mistakes_are_one_line_each(write_config: Callable[[str], Path], body: str, expected: str) -> None:
    assert expected in problems(write_config, body)
