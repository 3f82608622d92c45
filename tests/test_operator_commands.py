"""The operator's first hour with the CLI: commands that find the daemon's state from any
directory, need none of its secrets, say what happened, and exit with honest statuses."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.model import Incident, Severity
from monitor.sqlite_file import SqliteFile
from tests.fakes import START
from tests.store_seed import create_incident

REPOSITORY = Path(__file__).resolve().parent.parent
CONFIG = """
[monitor]
name = "shop"

[checks.api]
type = "http"
url = "http://127.0.0.1:9/health"

[sinks.oncall]
type = "slack"
webhook_url_env = "SLACK_WEBHOOK_URL"
"""


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "SLACK_"))}
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], capture_output=True, text=True, timeout=60, cwd=cwd,
        env={**environment, "PYTHONPATH": str(REPOSITORY), **env},
    )


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    """/etc/health-monitor as the package installs it: the config with a relative state_path."""
    directory = tmp_path / "etc" / "health-monitor"
    directory.mkdir(parents=True)
    (directory / "monitor.toml").write_text(CONFIG)
    return directory


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """The operator's home directory, where the alert's `health-monitor ack 12` is typed."""
    directory = tmp_path / "home"
    directory.mkdir()
    return directory


def daemon_store(etc: Path) -> SqliteFile:
    """The store the daemon keeps next to its config (state_path's default, relative)."""
    return SqliteFile(etc / "state" / "health-monitor.db")


def open_incident(etc: Path) -> Incident:
    with daemon_store(etc) as store:
        return create_incident(store,
            Incident(check="api", code="down", severity=Severity.P1, opened_at=START, summary="HTTP 503", impact="-")
        )


def test_operator_commands_find_the_store_next_to_the_config_from_any_directory(etc, elsewhere) -> None:
    incident = open_incident(etc)
    config = str(etc / "monitor.toml")
    listed = cli("incidents", "--config", config, "--format", "json", cwd=elsewhere)
    assert listed.returncode == 0, listed.stderr
    assert [found["id"] for found in json.loads(listed.stdout)] == [incident.id]
    acked = cli("ack", str(incident.id), "--by", "alice", "--config", config, cwd=elsewhere)
    assert acked.returncode == 0, acked.stderr
    with daemon_store(etc) as store:
        assert [request.by for request in store.unapplied_acknowledgements()] == ["alice"]
    assert not (elsewhere / "state").exists()


@pytest.mark.parametrize(
    "command",
    [("incidents",), ("ack", "1"), ("postmortem", "1"), ("silence", "list"),
     ("silence", "add", "--check", "api", "--for", "1h", "--reason", "deploy")],
)
def test_without_a_store_they_say_so_and_create_none(etc, elsewhere, command) -> None:
    done = cli(*command, "--config", str(etc / "monitor.toml"), cwd=elsewhere)
    assert done.returncode == 1
    store = etc / "state" / "health-monitor.db"
    assert done.stderr == f"error: no state store at {store}: is the daemon running with this config?\n"
    assert not store.exists() and not (elsewhere / "state").exists()


def test_operator_commands_need_no_secrets_but_check_config_does(etc, elsewhere) -> None:
    open_incident(etc)
    config = str(etc / "monitor.toml")
    assert cli("incidents", "--config", config, cwd=elsewhere).returncode == 0
    checked = cli("check-config", "--config", config, cwd=elsewhere)
    assert checked.returncode == 2
    assert checked.stderr == "error: sinks.oncall.webhook_url_env: environment variable SLACK_WEBHOOK_URL is not set\n"
    assert cli("check-config", "--config", config, cwd=elsewhere, SLACK_WEBHOOK_URL="https://x.test/h").returncode == 0


def test_once_exits_3_unknown_when_its_config_is_invalid(etc, elsewhere) -> None:
    config = etc / "monitor.toml"
    config.write_text(CONFIG.replace('name = "shop"', 'name = "shop"\nintervall = "1m"'))
    done = cli("once", "--config", str(config), cwd=elsewhere, SLACK_WEBHOOK_URL="https://x.test/h")
    assert done.returncode == 3
    assert done.stderr == "error: monitor.intervall: unknown key; did you mean `interval`?\n"
    usage = cli("once", "--formt", "json", cwd=elsewhere)
    assert usage.returncode == 3


def test_an_invalid_config_exits_2_for_every_other_command(etc, elsewhere) -> None:
    config = etc / "monitor.toml"
    config.write_text(CONFIG + "\n[servr]\n")
    for command in (("check-config",), ("incidents",), ("ack", "1"), ("silence", "list")):
        done = cli(*command, "--config", str(config), cwd=elsewhere, SLACK_WEBHOOK_URL="https://x.test/h")
        assert (done.returncode, done.stderr) == (2, "error: servr: unknown key; did you mean `server`?\n"), command


def test_a_second_acknowledgement_names_the_first_and_records_nothing(etc, elsewhere) -> None:
    incident = open_incident(etc)
    config = str(etc / "monitor.toml")
    assert cli("ack", str(incident.id), "--by", "alice", "--config", config, cwd=elsewhere).returncode == 0
    again = cli("ack", str(incident.id), "--by", "bob", "--config", config, cwd=elsewhere)
    assert again.returncode == 0
    assert again.stdout.startswith(f"incident #{incident.id} (api/down) is already acknowledged by alice at ")
    with daemon_store(etc) as store:
        assert [request.by for request in store.unapplied_acknowledgements()] == ["alice"]


def test_the_postmortem_ends_with_a_newline(etc, elsewhere) -> None:
    incident = open_incident(etc)
    done = cli("postmortem", str(incident.id), "--config", str(etc / "monitor.toml"), cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("\n") and not done.stdout.endswith("\n\n")


def test_schema_into_a_pipe_that_closes_early_prints_no_traceback(elsewhere) -> None:
    done = subprocess.run(
        f"{sys.executable} -m monitor schema | head -c 100", shell=True, capture_output=True, text=True,
        timeout=60, cwd=elsewhere, env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    assert len(done.stdout) == 100
    assert done.stderr == ""


@pytest.mark.parametrize("command", ["run", "once"])
def test_help_of_run_and_once_shows_examples_and_exit_statuses(elsewhere, command) -> None:
    done = cli(command, "--help", cwd=elsewhere)
    assert done.returncode == 0
    assert "examples:" in done.stdout and f"health-monitor {command} --config" in done.stdout
    assert "exit statuses" in done.stdout
    assert "3  UNKNOWN" in done.stdout if command == "once" else "2  invalid config" in done.stdout


def test_version_answers_without_importing_the_daemon(elsewhere) -> None:
    probe = (
        "import sys\nfrom monitor.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'monitor', 'alerting', 'checks', 'aiohttp', 'pydantic', 'rich', 'structlog'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    version, modules = done.stdout.splitlines()
    assert version == "health-monitor 0.1.0"
    heavy = [
        name for name in ast.literal_eval(modules)
        if name.split(".")[0] != "monitor" or name in {"monitor.commands", "monitor.config", "monitor.daemon"}
    ]
    assert heavy == []


def test_dev_sh_usage_is_its_comment_only() -> None:
    done = subprocess.run([REPOSITORY / "dev.sh"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout.splitlines()[0].startswith("One entry point that sets itself up")
    assert "./dev.sh test [ARGS]" in done.stdout
    assert "set -euo" not in done.stdout
