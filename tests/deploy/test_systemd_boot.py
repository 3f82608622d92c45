"""deploy/systemd/health-monitor.service started for real: a Debian system booted with
systemd-nspawn, health-monitor installed into it from this checkout as the README says, and
the unit started (systemd waits for READY=1), reloaded (RELOADING=1 ... READY=1, the new
config in effect, the same process) and stopped (exit 0), with deploy/systemd/monitor.toml.
The trees are minimal: no procps, so no /bin/kill to reload with.

  trixie   systemd 257: the unit as shipped, Type=notify-reload
  bookworm systemd 252: the unit plus the drop-in for systemd before 253"""

import re
from collections.abc import Iterator

import pytest

from tests.deploy.helpers import DEPLOY, http_get, wait_until
from tests.deploy.nspawn import Machine, booted
from tests.deploy.rootfs import CACHE, Rootfs, copy_checkout
from tests.net import free_port

SYSTEMD = DEPLOY / "systemd"
UNIT = "health-monitor.service"
DROP_IN_BEFORE_253 = "systemd-before-253.conf"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "ca-certificates")


def config(port: int, extra: str = "") -> str:
    """deploy/systemd/monitor.toml on a free port (the container shares the host's network)."""
    shipped = (SYSTEMD / "monitor.toml").read_text()
    assert shipped.count(":8573") == 2, "listen and the self check"
    return shipped.replace(":8573", f":{port}") + extra


SECOND_CHECK = """
[checks.added-by-reload]
type = "tcp"
host = "127.0.0.1"
port = {port}
interval = "1s"
"""


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(("trixie", (), "notify-reload"), id="trixie-notify-reload"),
        pytest.param(("bookworm", (DROP_IN_BEFORE_253,), "notify"), id="bookworm-fallback"),
    ],
)
def machine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Machine, str]]:
    """A booted system with health-monitor installed as the README's systemd section says."""
    release, drop_ins, expected_type = request.param
    workdir = tmp_path_factory.mktemp(f"nspawn-{release}")
    checkout = copy_checkout(workdir / "checkout")
    pip_cache = CACHE / f"pip-{release}"
    pip_cache.mkdir(parents=True, exist_ok=True)
    binds = {checkout: "/src", pip_cache: "/root/.cache/pip"}
    name = f"hm-{release}-{free_port()}"
    with booted(Rootfs(release, PACKAGES), name, binds, workdir / "console.log") as booted_system:
        assert not any((booted_system.root / path).exists() for path in ("bin/kill", "usr/bin/kill"))
        booted_system.check("python3", "-m", "venv", "/opt/health-monitor")
        booted_system.check("/opt/health-monitor/bin/pip", "install", "--quiet", "/src", timeout=600)
        units = booted_system.root / "etc/systemd/system"
        (units / UNIT).write_text((SYSTEMD / UNIT).read_text())
        for drop_in in drop_ins:
            (units / f"{UNIT}.d").mkdir(exist_ok=True)
            (units / f"{UNIT}.d" / drop_in).write_text((SYSTEMD / f"{UNIT}.d" / drop_in).read_text())
        (booted_system.root / "etc/health-monitor").mkdir(exist_ok=True)
        booted_system.check("systemctl", "daemon-reload")
        yield booted_system, expected_type


def test_the_unit_starts_reloads_and_stops_under_systemd(machine: tuple[Machine, str]) -> None:
    system, expected_type = machine
    port = free_port()
    settings = system.root / "etc/health-monitor/monitor.toml"
    settings.write_text(config(port))

    system.check("systemctl", "start", UNIT, timeout=90)  # returns once the daemon said READY=1
    started = system.show(UNIT, "Type", "ActiveState", "SubState", "MainPID", "StatusText")
    assert (started["Type"], started["ActiveState"], started["SubState"]) == (expected_type, "active", "running")
    assert "listening on 127.0.0.1" in started["StatusText"], started
    assert http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200
    state = system.root / "var/lib/private/health-monitor"  # DynamicUser's StateDirectory
    wait_until(lambda: (state / "health-monitor.db").exists(), "the state store in the state directory")

    settings.write_text(config(port, SECOND_CHECK.format(port=port)))
    system.check("systemctl", "reload", UNIT, timeout=60)
    wait_until(lambda: 'check="added-by-reload"' in http_get(f"http://127.0.0.1:{port}/metrics")[1], "the new check")
    reloaded = system.show(UNIT, "ActiveState", "MainPID", "NRestarts")
    assert reloaded == {"ActiveState": "active", "MainPID": started["MainPID"], "NRestarts": "0"}
    journal = system.check("journalctl", "--unit", UNIT, "--output=cat")
    assert re.search(r'"event": "config\.reloaded"', journal), journal[-3000:]

    system.check("systemctl", "stop", UNIT, timeout=60)
    stopped = system.show(UNIT, "ActiveState", "Result", "ExecMainStatus")
    assert stopped == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}


def test_systemd_analyze_verify_accepts_the_unit_inside(machine: tuple[Machine, str]) -> None:
    """The release's own systemd reads the unit (and drop-in) without a warning, except that
    systemd before 253 names the Type= it does not know, which the drop-in replaces."""
    system, expected_type = machine
    result = system.run("systemd-analyze", "verify", "--man=no", f"/etc/systemd/system/{UNIT}")
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    if expected_type == "notify":
        assert all("Failed to parse service type, ignoring: notify-reload" in line for line in warnings), warnings
    else:
        assert warnings == []


