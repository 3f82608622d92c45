"""systemd's notify protocol (sd_notify(3)) without libsystemd: one datagram per message to
the unix socket named by $NOTIFY_SOCKET. Outside systemd (no NOTIFY_SOCKET) every call is a
no-op, and a failed send is logged, never raised: telling systemd must not break the daemon.

    READY=1            config, store and server are up
    RELOADING=1        a SIGHUP reload started (with MONOTONIC_USEC, which systemd >= 253 wants)
    STOPPING=1         shutdown started
    WATCHDOG=1         the scheduler loop is alive; sent every WatchdogSec / 2
    STATUS=...         one line shown by `systemctl status`

`python -m monitor.systemd reload` is the ExecReload= of systemd before 253 (no
Type=notify-reload there): SIGHUP to $MAINPID without /bin/kill, which minimal systems lack.
"""

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("monitor.systemd")

NOTIFY_SOCKET = "NOTIFY_SOCKET"
MAINPID = "MAINPID"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"


def socket_address(value: str) -> str | None:
    """The address to send to: a path, or an abstract-namespace name for a leading `@`."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # e.g. vsock: addresses, which a service on a host never gets


def notify(*fields: str) -> bool:
    """Send `fields` (e.g. "READY=1", "STATUS=running") as one message; True when sent."""
    configured = os.environ.get(NOTIFY_SOCKET)
    if not configured or not fields:
        return False
    address = socket_address(configured)
    if address is None:
        log.warning("systemd.notify_socket_unsupported", notify_socket=configured)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode())
    except OSError as exc:
        log.warning("systemd.notify_failed", message=fields[0], error=f"{type(exc).__name__}: {exc}")
        return False
    return True


def ready(status: str | None = None) -> bool:
    return notify("READY=1", *_status(status))


def reloading(status: str | None = None) -> bool:
    return notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", *_status(status))


def stopping(status: str | None = None) -> bool:
    return notify("STOPPING=1", *_status(status))


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    return notify(*_status(text))


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd compares MONOTONIC_USEC with."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when systemd expects none:
    no WATCHDOG_USEC, an invalid one, or a WATCHDOG_PID naming another process."""
    raw_usec = os.environ.get(WATCHDOG_USEC, "")
    raw_pid = os.environ.get(WATCHDOG_PID, "")
    if not raw_usec.isdigit() or int(raw_usec) == 0:
        return None
    if raw_pid and (not raw_pid.isdigit() or int(raw_pid) != os.getpid()):
        return None
    return int(raw_usec) / 1_000_000 / 2


async def watchdog_loop(interval: float, alive: Callable[[], bool]) -> None:
    """Ping every `interval` seconds while `alive()` says so (the scheduler's heartbeat is
    fresh). A stuck loop stops the pings, and systemd restarts the service after WatchdogSec."""
    while True:
        if alive():
            watchdog()
        else:
            log.warning("systemd.watchdog_withheld", reason="the scheduler heartbeat is stale")
        await asyncio.sleep(interval)


def _status(text: str | None) -> tuple[str, ...]:
    return (f"STATUS={' '.join(text.split())}",) if text else ()


def signal_reload() -> int:
    """SIGHUP to the service's main process, named by $MAINPID (systemd sets it for ExecReload=)."""
    raw_pid = os.environ.get(MAINPID, "")
    if not raw_pid.isdigit() or int(raw_pid) <= 1:
        shown = raw_pid or "unset"
        print(f"health-monitor: ${MAINPID} is {shown}: run this as the unit's ExecReload=", file=sys.stderr)
        return 2
    try:
        os.kill(int(raw_pid), signal.SIGHUP)
    except OSError as exc:
        print(f"health-monitor: cannot signal the main process {raw_pid}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["reload"]:
        print("usage: python -m monitor.systemd reload", file=sys.stderr)
        sys.exit(2)
    sys.exit(signal_reload())
