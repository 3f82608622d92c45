"""Every config mistake gets one line naming the key path and the reason, and exit 2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import ConfigError, load_config

VALID = """
[monitor]
name = "test"
interval = "30s"

[checks.api]
type = "http"
url = "http://127.0.0.1:1/health"
timeout = "5s"

[sinks.slack-oncall]
type = "slack"
webhook_url_env = "TEST_SLACK_WEBHOOK"
"""


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    return raised.value.problems


@pytest.fixture(autouse=True)
def _webhook_env(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    monkeypatch.setenv("TEST_SLACK_WEBHOOK", "https://hooks.slack.invalid/services/T/B/secret")


def test_a_valid_file_loads_with_defaults_filled_in(write_config) -> None:
    config = load_config(write_config(VALID))
    assert config.monitor.name == "test"
    assert config.checks["api"].interval == 30.0
    assert config.checks["api"].timeout == 5.0
    assert config.sinks["slack-oncall"].webhook_url_env.value().endswith("/secret")


def test_missing_file(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nope.toml") == [f"{tmp_path / 'nope.toml'}: config file not found"]


def test_toml_syntax_error_names_the_line(write_config) -> None:
    path = write_config('[monitor]\nname = "x"\ninterval = \n')
    (problem,) = problems_of(path)
    assert "TOML syntax error" in problem
    assert "line 3" in problem


def test_unknown_key_is_named_with_its_path(write_config) -> None:
    path = write_config(VALID.replace('timeout = "5s"', 'timeout = "5s"\nexpect_staus = [200]'))
    assert problems_of(path) == ["checks.api.expect_staus: unknown key; did you mean `expect_status`?"]


def test_unknown_key_in_the_envelope(write_config) -> None:
    path = write_config(VALID.replace('interval = "30s"', 'interval = "30s"\nconcurrancy = 5'))
    assert problems_of(path) == ["monitor.concurrancy: unknown key; did you mean `concurrency`?"]


def test_an_unknown_key_with_no_close_name_says_so(write_config) -> None:
    path = write_config(VALID.replace('interval = "30s"', 'interval = "30s"\nzebra = 5'))
    assert problems_of(path) == ["monitor.zebra: unknown key (check its spelling)"]


def test_every_mistake_in_the_file_is_reported_in_one_run(write_config) -> None:
    body = VALID.replace('interval = "30s"', 'intervall = "30s"').replace('timeout = "5s"', 'timout = "5s"')
    path = write_config(body + '\n[servr]\nlisten = "127.0.0.1:1"\n')
    assert problems_of(path) == [
        "monitor.intervall: unknown key; did you mean `interval`?",
        "servr: unknown key; did you mean `server`?",
        "checks.api.timout: unknown key; did you mean `timeout`?",
    ]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (('timeout = "5s"', 'timeout = "-5s"'), "checks.api.timeout: must not be negative"),
        (('timeout = "5s"', "timeout = -5"), "checks.api.timeout: must not be negative"),
        (('interval = "30s"', 'interval = "-1m"'), "monitor.interval: must not be negative"),
        (('timeout = "5s"', "timeout = 0"), "checks.api.timeout: must be greater than 0"),
        (('timeout = "5s"', 'interval = "0s"'), "checks.api.interval: must be greater than 0"),
    ],
)
def test_negative_and_zero_durations_are_rejected(write_config, edit, expected) -> None:
    (problem,) = problems_of(write_config(VALID.replace(*edit)))
    assert problem.startswith(expected)


def test_a_mistake_from_an_environment_override_names_the_variable(write_config, monkeypatch) -> None:
    monkeypatch.setenv("MONITOR_SERVER__LISTEN", "nowhere")
    monkeypatch.setenv("MONITOR_CHECKS__API__TIMEOUT", "soon")
    problems = problems_of(write_config(VALID))
    assert problems == [
        "server.listen: expected host:port, got 'nowhere' (set by $MONITOR_SERVER__LISTEN)",
        "checks.api.timeout: invalid duration 'soon': use a number with a unit, e.g. \"500ms\", \"30s\", "
        "\"15m\", \"1h\" (set by $MONITOR_CHECKS__API__TIMEOUT)",
    ]


def test_relative_paths_resolve_against_the_config_files_directory(tmp_path, monkeypatch) -> None:
    etc = tmp_path / "etc"
    templates = etc / "templates"
    templates.mkdir(parents=True)
    (etc / "monitor.toml").write_text(
        VALID + '\n[sinks.alerts]\ntype = "file"\npath = "log/alerts.log"\n'
        '\n[alerting]\ntemplates_dir = "templates"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config("../etc/monitor.toml")
    base = Path("../etc")
    assert Path(config.monitor.state_path) == base / "state/health-monitor.db"
    assert Path(config.monitor.incident_log) == base / "incidents.log"
    assert Path(config.monitor.postmortem_dir) == base / "postmortems"
    assert Path(config.settings.alerting.templates_dir or "") == base / "templates"
    assert Path(config.sinks["alerts"].path) == base / "log/alerts.log"
    absolute = load_config(etc / "monitor.toml")
    assert absolute.monitor.state_path == str(etc / "state/health-monitor.db")


def test_operator_commands_load_the_file_without_its_secrets(write_config, monkeypatch) -> None:
    monkeypatch.delenv("TEST_SLACK_WEBHOOK")
    config = load_config(write_config(VALID), resolve_secrets=False)
    secret = config.sinks["slack-oncall"].webhook_url_env
    assert secret.variable == "TEST_SLACK_WEBHOOK"
    with pytest.raises(RuntimeError, match="without its secrets"):
        secret.value()


STATE_DSN = "postgresql://hm:state-Pa55word@db.internal:5432/health"


def test_state_on_postgresql_comes_from_the_dsn_variable_also_for_the_operator_commands(
    write_config, monkeypatch
) -> None:
    monkeypatch.setenv("HEALTH_MONITOR_STATE_DSN", STATE_DSN)
    path = write_config(VALID.replace('name = "test"', 'name = "test"\nstate_dsn_env = "HEALTH_MONITOR_STATE_DSN"'))
    for resolve_secrets in (True, False):  # the operator commands need the store, and only its secret
        monitor = load_config(path, resolve_secrets=resolve_secrets).monitor
        assert monitor.state_dsn_value == STATE_DSN and monitor.pgbouncer is False
    assert load_config(path).monitor.model_dump(mode="json")["state_dsn_env"] == "HEALTH_MONITOR_STATE_DSN"
    monkeypatch.delenv("HEALTH_MONITOR_STATE_DSN")
    assert problems_of(path) == [
        "monitor.state_dsn_env: environment variable HEALTH_MONITOR_STATE_DSN is not set"
    ]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            'state_dsn_env = "HEALTH_MONITOR_STATE_DSN"\nstate_path = "state.db"',
            "monitor: set one of state_path (SQLite) and state_dsn_env (PostgreSQL), not both",
        ),
        (
            f'state_dsn_env = "HEALTH_MONITOR_STATE_DSN"\nstate_dsn = "{STATE_DSN}"',
            "monitor: set one of state_dsn_env and state_dsn, not both",
        ),
        ('state_dsn = "mysql://hm:state-Pa55word@db/health"', "monitor.state_dsn: expected a postgresql:// URL"),
    ],
)
def test_state_store_keys_that_contradict_each_other_are_named_without_the_dsn(
    write_config, monkeypatch, keys: str, expected: str
) -> None:
    monkeypatch.setenv("HEALTH_MONITOR_STATE_DSN", STATE_DSN)
    problems = problems_of(write_config(VALID.replace('name = "test"', f'name = "test"\n{keys}')))
    assert problems == [expected]
    assert "Pa55word" not in "".join(problems)


def test_bad_duration(write_config) -> None:
    path = write_config(VALID.replace('timeout = "5s"', 'timeout = "5 minutes"'))
    (problem,) = problems_of(path)
    assert problem.startswith("checks.api.timeout: invalid duration '5 minutes'")


def test_wrong_type(write_config) -> None:
    path = write_config(VALID.replace('timeout = "5s"', 'timeout = "5s"\nfailure_threshold = "often"'))
    (problem,) = problems_of(path)
    assert problem.startswith("checks.api.failure_threshold: Input should be a valid integer")


def test_unset_secret_variable_is_named_but_never_its_value(write_config, monkeypatch) -> None:
    monkeypatch.delenv("TEST_SLACK_WEBHOOK")
    assert problems_of(write_config(VALID)) == [
        "sinks.slack-oncall.webhook_url_env: environment variable TEST_SLACK_WEBHOOK is not set"
    ]


def test_unknown_check_type(write_config) -> None:
    path = write_config(VALID.replace('type = "http"', 'type = "htp"'))
    (problem,) = problems_of(path)
    assert problem.startswith("checks.api.type: unknown type 'htp' (known: ")


def test_environment_overrides_the_file(write_config, monkeypatch) -> None:
    monkeypatch.setenv("MONITOR_CHECKS__API__URL", "http://127.0.0.1:2/other")
    monkeypatch.setenv("MONITOR_MONITOR__CONCURRENCY", "7")
    config = load_config(write_config(VALID))
    assert config.checks["api"].url == "http://127.0.0.1:2/other"
    assert config.monitor.concurrency == 7


def test_config_path_from_environment(write_config, monkeypatch) -> None:
    path = write_config(VALID)
    monkeypatch.setenv("MONITOR_CONFIG", str(path))
    assert load_config().path == path


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (('timeout = "5s"', 'timeout = "soon"'), "error: checks.api.timeout: invalid duration 'soon'"),
        (('type = "http"', 'type = "http"\nbogus = 1'), "error: checks.api.bogus: unknown key"),
    ],
)
def test_check_config_prints_one_line_and_exits_2(write_config, edit, expected) -> None:
    path = write_config(VALID.replace(*edit))
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(expected)
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_check_config_summarises_a_valid_file_without_secrets(write_config) -> None:
    path = write_config(VALID)
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TEST_SLACK_WEBHOOK": "https://hooks.slack.invalid/secret-token"},
    )
    assert done.returncode == 0, done.stderr
    assert "1 check, 1 sink," in done.stdout
    # Not a terminal (the journal under ExecStartPre): plain lines, no boxed table.
    assert "check api: http, every 30s, timeout 5s" in done.stdout
    assert "sink slack-oncall: slack, min severity P4" in done.stdout
    assert not set("┏━┃│╭─") & set(done.stdout)
    assert "secret-token" not in done.stdout + done.stderr


def test_bundled_config_is_valid(clean_env) -> None:
    config = load_config(Path(__file__).parent.parent / "monitor.toml")
    assert {sink.type for sink in config.sinks.values()} == {"console", "file"}
    assert config.monitor.state_path.endswith(".db")
