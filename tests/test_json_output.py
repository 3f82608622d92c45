"""Off a terminal (`run 2>&1 | jq`, the journal) every line the daemon writes is one JSON
object: its log lines, library warnings, and the console sink's alerts."""

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.net import LOOPBACK, closed_port, free_port


def test_everything_run_prints_off_a_terminal_is_one_json_object_a_line(tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(
        f'[monitor]\ninterval = "100ms"\n[server]\nlisten = "{LOOPBACK}:{free_port()}"\n'
        f'[checks.db]\ntype = "tcp"\nhost = "{LOOPBACK}"\nport = {closed_port()}\nfailure_threshold = 1\n'
        '[sinks.terminal]\ntype = "console"\n'
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "NOTIFY_SOCKET"))}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment, cwd=tmp_path,
    )
    lines: list[str] = []
    try:
        assert daemon.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any('"event": "notification"' in line for line in lines):
            if not select.select([daemon.stdout], [], [], 0.5)[0]:
                continue
            line = daemon.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        daemon.send_signal(signal.SIGTERM)
        rest, _ = daemon.communicate(timeout=30)
    lines += rest.splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    events = [record["event"] for record in records]
    assert "daemon.started" in events and events[-1] == "daemon.stopped"
    (alert,) = [record for record in records if record["event"] == "notification"]
    assert (alert["sink"], alert["kind"], alert["severity"]) == ("terminal", "initial", "P2")
    assert "INCIDENT DETECTED" in alert["text"]
