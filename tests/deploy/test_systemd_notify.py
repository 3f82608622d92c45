"""monitor/systemd.py speaks sd_notify to a real unix datagram socket set as NOTIFY_SOCKET."""

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import systemd


class NotifyListener:
    """The receiving end systemd would hold: one datagram per notify message."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(systemd.socket_address(address))
        self.sock.settimeout(5.0)

    def receive(self) -> list[str]:
        return self.sock.recv(4096).decode().split("\n")

    def pending(self) -> list[list[str]]:
        """Every message already queued, without waiting."""
        messages = []
        self.sock.setblocking(False)
        try:
            while True:
                messages.append(self.sock.recv(4096).decode().split("\n"))
        except BlockingIOError:
            return messages
        finally:
            self.sock.settimeout(5.0)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    address = str(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    receiver = NotifyListener(address)
    yield receiver
    receiver.close()


def test_ready_stopping_and_status_reach_the_socket(listener: NotifyListener) -> None:
    assert systemd.ready(status="3 checks,  2 sinks")
    assert listener.receive() == ["READY=1", "STATUS=3 checks, 2 sinks"]
    assert systemd.stopping()
    assert listener.receive() == ["STOPPING=1"]
    assert systemd.watchdog()
    assert listener.receive() == ["WATCHDOG=1"]
    assert systemd.status("reloading\nconfig")
    assert listener.receive() == ["STATUS=reloading config"]


def test_reloading_carries_the_monotonic_clock(listener: NotifyListener) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert systemd.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = listener.receive()
    assert first == "RELOADING=1"
    name, _, value = second.partition("=")
    assert name == "MONOTONIC_USEC" and before <= int(value) <= after


def test_an_abstract_namespace_address_works(monkeypatch: pytest.MonkeyPatch) -> None:
    address = f"@health-monitor-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    receiver = NotifyListener(address)
    try:
        assert systemd.ready()
        assert receiver.receive() == ["READY=1"]
    finally:
        receiver.close()


def test_without_notify_socket_every_call_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not systemd.ready()
    assert not systemd.reloading()
    assert not systemd.stopping()
    assert not systemd.watchdog()


def test_a_dead_socket_is_logged_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    assert not systemd.ready()
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert not systemd.ready()


@pytest.mark.parametrize(
    ("usec", "pid", "interval"),
    [
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("1000000", "self", 0.5),
        ("30000000", "1", None),  # another process's watchdog
        ("30000000", "abc", None),
        ("0", None, None),
        ("-5", None, None),
        ("soon", None, None),
        (None, None, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, interval: float | None
) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert systemd.watchdog_interval() == interval


async def test_the_watchdog_loop_pings_only_while_the_loop_is_alive(listener: NotifyListener) -> None:
    asked = 0

    def alive() -> bool:
        """Alive for the first three rounds, stuck after."""
        nonlocal asked
        asked += 1
        return asked <= 3

    task = asyncio.create_task(systemd.watchdog_loop(0.001, alive))
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while asked < 8:
            assert asyncio.get_running_loop().time() < deadline, "the watchdog loop stopped asking"
            await asyncio.sleep(0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert listener.pending() == [["WATCHDOG=1"]] * 3


def test_the_reload_command_sends_sighup_to_mainpid(tmp_path: Path) -> None:
    """`python -m monitor.systemd reload`, the ExecReload= of systemd before 253."""
    received = tmp_path / "received"
    recorder = [sys.executable, "-c", HUP_RECORDER, str(received)]
    with subprocess.Popen(recorder, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == "waiting\n"
            reload = _reload_command({"MAINPID": str(child.pid)})
            assert reload.returncode == 0, reload.stderr
            assert child.wait(timeout=10) == 0
        finally:
            child.kill()
    assert received.read_text() == "SIGHUP"


def test_the_reload_command_without_mainpid_says_where_it_belongs() -> None:
    reload = _reload_command({})
    assert reload.returncode == 2
    assert reload.stderr == "health-monitor: $MAINPID is unset: run this as the unit's ExecReload=\n"


HUP_RECORDER = """
import pathlib, signal, sys
signal.signal(signal.SIGHUP, lambda *_: (pathlib.Path(sys.argv[1]).write_text("SIGHUP"), sys.exit(0)))
print("waiting", flush=True)
signal.pause()
"""


def _reload_command(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "MAINPID"}
    return subprocess.run(
        [sys.executable, "-m", "monitor.systemd", "reload"],
        env={**clean, **env}, capture_output=True, text=True, timeout=30, check=False,
    )
