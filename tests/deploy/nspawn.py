"""A Debian system booted with `systemd-nspawn --boot` over a cached debootstrap tree, for
tests that need a real systemd as PID 1. The tree stays pristine (--volatile=overlay: writes
go to a tmpfs); the host reaches in with nsenter, so no systemd-machined is needed on the host.
The container shares the host's network: pip reaches PyPI, the tests reach the daemon."""

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.helpers import require, run, wait_until
from tests.deploy.rootfs import Rootfs, cache_lock, require_root

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Machine:
    leader: int  # the container's PID 1, its systemd, as the host sees it
    console: Path

    @property
    def root(self) -> Path:
        """The container's / (its overlay), writable from the host."""
        return Path(f"/proc/{self.leader}/root")

    def run(self, *command: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """`command` inside the container, in all its namespaces, with a clean environment."""
        enter = [require("nsenter"), f"--target={self.leader}", "--all", "env", "-i", f"PATH={PATH}", "LANG=C.UTF-8"]
        return run([*enter, *command], timeout=timeout)

    def check(self, *command: str, timeout: float = 60.0) -> str:
        result = self.run(*command, timeout=timeout)
        assert result.returncode == 0, f"{' '.join(command)}: exit {result.returncode}\n{result.stdout}{result.stderr}"
        return result.stdout

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        output = self.check("systemctl", "show", unit, *(f"--property={name}" for name in properties))
        return dict(line.partition("=")[::2] for line in output.splitlines())


@contextmanager
def booted(rootfs: Rootfs, name: str, binds: dict[Path, str], console: Path) -> Iterator[Machine]:
    """The tree of `rootfs` booted until systemd reports the system up; powered off after."""
    require_root("systemd-nspawn")
    tree = rootfs.path()
    command = [
        require("systemd-nspawn"), f"--directory={tree}", f"--machine={name}", "--boot", "--volatile=overlay",
        "--register=no", "--keep-unit", "--console=read-only",
        *(f"--bind={source}:{target}" for source, target in binds.items()),
    ]
    with cache_lock(f"boot-{rootfs.key}"), console.open("wb") as out:
        nspawn = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            machine = Machine(_wait_for_leader(nspawn, console), console)
            wait_until(lambda: _system_up(machine), f"{name} booted\n{_tail(console)}", timeout=90, every=0.5)
            yield machine
        finally:
            nspawn.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
            try:
                nspawn.wait(timeout=60)
            except subprocess.TimeoutExpired:
                nspawn.kill()
                nspawn.wait()


def _wait_for_leader(nspawn: subprocess.Popen[bytes], console: Path) -> int:
    """The container's systemd: nspawn's child once it has exec'd init (before that, the child
    is nspawn's own short-lived helper)."""
    children = Path(f"/proc/{nspawn.pid}/task/{nspawn.pid}/children")
    found: list[int] = []

    def leader() -> bool:
        if nspawn.poll() is not None:
            raise AssertionError(f"systemd-nspawn exited with {nspawn.returncode}:\n{_tail(console)}")
        for pid in children.read_text().split():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    found.append(int(pid))
                    return True
            except FileNotFoundError:
                continue
        return False

    wait_until(leader, "the container's systemd", timeout=30)
    return found[0]


def _system_up(machine: Machine) -> bool:
    state = machine.run("systemctl", "is-system-running", timeout=10).stdout.strip()
    if state == "degraded":
        failed = machine.run("systemctl", "--failed", "--no-legend").stdout
        raise AssertionError(f"the container booted degraded:\n{failed}")
    return state == "running"


def _tail(console: Path) -> str:
    return console.read_text(errors="replace")[-3000:] if console.exists() else ""
