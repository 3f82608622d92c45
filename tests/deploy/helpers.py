"""What the deploy tests share: the repository's paths, the binaries they need (missing one is
a failure naming its Debian package, never a skip), and `health-monitor run` as a subprocess
on 127.0.0.1, polled with deadlines."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ARTIFACTS = REPO / "test-artifacts"

# Binary -> the Debian package that brings it (what .ci/run installs).
DEBIAN_PACKAGES = {
    "systemd-analyze": "systemd",
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "chromium": "chromium",
    "amtool": "prometheus-alertmanager",
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "nsenter": "util-linux",
    "dockerd": "docker.io",
    "docker": "docker.io",
    "docker-compose": "docker-compose",
}

# No proxy from the environment: every request of these tests goes to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def require(binary: str) -> str:
    """The binary's path; a failure (not a skip) naming the package to install when it is missing."""
    path = shutil.which(binary)
    if path is None:
        package = DEBIAN_PACKAGES.get(binary, binary)
        pytest.fail(f"{binary} not found: install Debian's {package} package (apt-get install -y {package})")
    return path



def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET; (0, reason) when nothing answers."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return 0, str(exc)


def http_json(url: str) -> dict[str, object]:
    status, body = http_get(url)
    assert status == 200, f"GET {url}: {status} {body[:300]}"
    parsed: dict[str, object] = json.loads(body)
    return parsed


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def clean_environment(**extra: str) -> dict[str, str]:
    """This environment without MONITOR_* overrides or systemd variables, plus `extra`."""
    dropped = ("MONITOR_", "NOTIFY_SOCKET", "WATCHDOG_")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(dropped)}, **extra}


def run(command: Sequence[str | Path], timeout: float = 60.0, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [str(part) for part in command], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


@dataclass
class DaemonProcess:
    """`health-monitor run` as a user starts it, with its output in files under `workdir`."""

    config: Path
    port: int
    env: dict[str, str]
    command: Sequence[str] = (sys.executable, "-m", "monitor")
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def workdir(self) -> Path:
        return self.config.parent

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, wait_ready: bool = True) -> "DaemonProcess":
        with (self.workdir / "stdout.log").open("wb") as out, (self.workdir / "stderr.log").open("wb") as err:
            self.process = subprocess.Popen(
                [*self.command, "run", "--config", str(self.config)],
                cwd=self.workdir, env=self.env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            )
        if wait_ready:
            wait_until(self.is_ready, f"the daemon's /readyz on port {self.port}\n{self.stderr()[-2000:]}")
        return self

    def is_ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the daemon exited with {self.process.returncode}:\n{self.stderr()[-2000:]}")
        return http_get(self.url("/readyz"), timeout=1.0)[0] == 200

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the daemon did not stop within {timeout:.0f}s") from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stderr(self) -> str:
        path = self.workdir / "stderr.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def metrics(self) -> str:
        status, body = http_get(self.url("/metrics"))
        assert status == 200, f"/metrics answered {status}"
        return body
