"""deploy/systemd/health-monitor.service: systemd-analyze accepts it, it is hardened, and the
daemon it starts speaks the notify protocol it declares (READY, WATCHDOG, RELOADING, STOPPING)."""

import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.deploy.helpers import (
    DEPLOY,
    DaemonProcess,
    clean_environment,
    require,
    run,
    wait_until,
)
from tests.net import free_port

UNIT = DEPLOY / "systemd" / "health-monitor.service"
DROP_IN = DEPLOY / "systemd" / "health-monitor.service.d" / "systemd-before-253.conf"
INSTALLED_BIN = "/opt/health-monitor/bin"
INSTALLED_BINARY = f"{INSTALLED_BIN}/health-monitor"


def directives(text: str) -> dict[str, list[str]]:
    """Key to values, in order (systemd allows a key several times)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.fixture
def verifiable_unit(tmp_path: Path) -> Path:
    """A copy of the unit and its drop-in whose commands point at the health-monitor of the running
    virtualenv, which exists (systemd-analyze verify rejects a unit whose ExecStart binary is missing)."""
    venv_bin = Path(sys.executable).parent
    assert (venv_bin / "health-monitor").exists(), f"{venv_bin}/health-monitor missing: install the project"
    copies = {UNIT: tmp_path / UNIT.name, DROP_IN: tmp_path / f"{UNIT.name}.d" / DROP_IN.name}
    for original, copy in copies.items():
        text = original.read_text()
        assert INSTALLED_BIN in text
        copy.parent.mkdir(exist_ok=True)
        copy.write_text(text.replace(INSTALLED_BIN, str(venv_bin)))
    return copies[UNIT]


def systemd_version() -> int:
    result = run([require("systemd-analyze"), "--version"])
    return int(result.stdout.split()[1])


def test_systemd_analyze_verify_accepts_the_unit_and_its_drop_in(verifiable_unit: Path) -> None:
    """With the drop-in for systemd before 253, as a host of any version would load them; the
    only warning allowed is an old systemd naming the Type= the drop-in replaces."""
    result = run([require("systemd-analyze"), "verify", "--man=no", verifiable_unit.name], cwd=verifiable_unit.parent)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    if systemd_version() < 253:
        assert len(warnings) == 1 and "Failed to parse service type, ignoring: notify-reload" in warnings[0], warnings
    else:
        assert warnings == [], f"warnings (an unknown or misspelt key?):\n{result.stderr}"


def test_the_unit_is_hardened_below_exposure_2(verifiable_unit: Path) -> None:
    result = run(
        [require("systemd-analyze"), "security", "--offline=yes", "--threshold=20", verifiable_unit.name],
        cwd=verifiable_unit.parent,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


def test_the_unit_declares_the_notify_contract_and_its_sandbox() -> None:
    unit = directives(UNIT.read_text())
    expected = {
        "Type": "notify-reload",
        "DynamicUser": "yes",
        "StateDirectory": "health-monitor",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "EnvironmentFile": "-/etc/health-monitor/health-monitor.env",
    }
    for key, value in expected.items():
        assert unit.get(key) == [value], f"{key}={unit.get(key)}"
    assert unit["WatchdogSec"][0].endswith("s")
    assert unit["ExecStart"] == [f"{INSTALLED_BINARY} run --config /etc/health-monitor/monitor.toml"]
    assert "ExecReload" not in unit, "notify-reload: systemd sends SIGHUP itself"


def test_the_drop_in_for_systemd_before_253_reloads_without_an_external_binary() -> None:
    drop_in = directives(DROP_IN.read_text())
    assert drop_in == {"Type": ["notify"], "ExecReload": [f"{INSTALLED_BIN}/python -m monitor.systemd reload"]}
    assert "pip install health-monitor" not in UNIT.read_text()


class NotifySocket:
    """The socket systemd listens on for the service's messages, kept in arrival order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[list[str]] = []

    def wait_for(self, wanted: Callable[[list[str]], bool], what: str, timeout: float = 20.0) -> list[str]:
        """The first message from now on that `wanted` accepts; every message read is kept."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = self.sock.recv(4096).decode().split("\n")
            except TimeoutError:
                continue
            self.messages.append(message)
            if wanted(message):
                return message
        raise AssertionError(f"no {what} within {timeout:.0f}s; got {self.messages}")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.sock.close()


def test_the_daemon_notifies_ready_watchdog_reload_and_stopping(tmp_path: Path, notify_socket: NotifySocket) -> None:
    port = free_port()
    config = tmp_path / "monitor.toml"
    config.write_text(
        f'[monitor]\nstate_path = "state.db"\n[server]\nlisten = "127.0.0.1:{port}"\n'
        f'[checks.self]\ntype = "http"\nurl = "http://127.0.0.1:{port}/healthz"\ninterval = "1s"\n'
    )
    env = clean_environment(NOTIFY_SOCKET=str(notify_socket.path), WATCHDOG_USEC="1000000")
    daemon = DaemonProcess(config, port, env)
    try:
        daemon.start(wait_ready=False)
        notify_socket.wait_for(lambda m: "READY=1" in m, "READY=1")
        wait_until(daemon.is_ready, "/readyz after READY=1")
        notify_socket.wait_for(lambda m: m == ["WATCHDOG=1"], "WATCHDOG=1 (WatchdogSec/2 = 0.5s)")
        notify_socket.wait_for(lambda m: m == ["WATCHDOG=1"], "a second WATCHDOG=1")

        daemon.signal(signal.SIGHUP)
        reloading = notify_socket.wait_for(lambda m: "RELOADING=1" in m, "RELOADING=1 after SIGHUP")
        fields = dict(field.partition("=")[::2] for field in reloading)
        assert fields["MONOTONIC_USEC"].isdigit(), reloading
        notify_socket.wait_for(lambda m: "READY=1" in m, "READY=1 after the reload")

        daemon.signal(signal.SIGTERM)
        notify_socket.wait_for(lambda m: "STOPPING=1" in m, "STOPPING=1 after SIGTERM")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
