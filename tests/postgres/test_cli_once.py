"""`health-monitor once --check db --format json` end to end: a real process, config and server."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.postgres.pg_server import MONITOR, Server

CONFIG = """
[monitor]
name = "cli-test"
state_path = "{tmp}/state.db"
incident_log = "{tmp}/incidents.log"

[checks.db]
type = "postgres"
dsn_env = "DATABASE_URL"
error_table = "no_such_error_table"
"""


def once(tmp_path: Path, database_url: str) -> tuple[int, dict[str, Any], str]:
    config = tmp_path / "monitor.toml"
    config.write_text(CONFIG.format(tmp=tmp_path))
    env = {name: value for name, value in os.environ.items() if not name.startswith("MONITOR_")}
    env["DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "monitor", "once", "--config", str(config), "--check", "db", "--format", "json"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, json.loads(done.stdout), done.stdout + done.stderr


def test_once_prints_the_findings_as_json_with_nagios_exit_codes(tmp_path: Path, pg_server: Server) -> None:
    wrong_password = "Wr0ng-Pa55-CLI"

    healthy_exit, healthy, _ = once(tmp_path, pg_server.role_dsn(MONITOR))
    down_exit, down, down_output = once(tmp_path, pg_server.dsn(MONITOR.name, wrong_password))

    assert healthy_exit == 3, "the missing error table makes the run UNKNOWN"
    assert healthy["status"] == "unknown"
    [check] = healthy["checks"]
    assert (check["check"], check["type"], check["status"]) == ("db", "postgres", "unknown")
    findings = {finding["code"]: finding for finding in check["findings"]}
    assert findings["unreachable"]["status"] == "ok"
    assert findings["unreachable"]["severity"] is None
    assert findings["unreachable"]["summary"].startswith("connected to ")
    assert findings["error_logs"]["status"] == "unknown"
    assert "no_such_error_table does not exist" in findings["error_logs"]["summary"]

    assert down_exit == 2
    assert down["status"] == "critical"
    [finding] = down["checks"][0]["findings"]
    assert (finding["code"], finding["status"], finding["severity"]) == ("unreachable", "critical", "P1")
    assert "authentication failed" in finding["summary"]
    assert wrong_password not in down_output
