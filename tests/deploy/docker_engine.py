"""A Docker engine of the tests' own: Debian's dockerd started by hand on a private socket,
with its images cached under rootfs.CACHE between runs. No registry is reachable here, so the
base image is imported from a debootstrap tree under the name the Dockerfile expects.

What this machine needs of it: no bridge and no iptables (build and run use the host's
network), and default ulimits no higher than ours (root lacks CAP_SYS_RESOURCE to raise them)."""

import resource
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.helpers import clean_environment, require, run, wait_until
from tests.deploy.rootfs import CACHE, COMPLETE, Rootfs, cache_lock, require_root

ROOTFS_LABEL = "org.health-monitor.tests.rootfs"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class DockerEngine:
    host: str

    def env(self) -> dict[str, str]:
        # The legacy builder: BuildKit would fetch its Dockerfile frontend from a registry.
        return clean_environment(DOCKER_HOST=self.host, DOCKER_BUILDKIT="0")

    def docker(self, *args: str, timeout: float = 120.0, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return run([require("docker"), *args], timeout=timeout, env=self.env(), **kwargs)

    def import_base(self, name: str, rootfs: Rootfs) -> None:
        """`name` is the debootstrap tree of `rootfs`, imported again only when that changed."""
        tree = rootfs.path()
        label = self.docker("image", "inspect", "--format", f'{{{{ index .Config.Labels "{ROOTFS_LABEL}" }}}}', name)
        if label.returncode == 0 and label.stdout.strip() == rootfs.key:
            return
        changes = ["--change", f"LABEL {ROOTFS_LABEL}={rootfs.key}", "--change", f"ENV PATH={BASE_PATH}"]
        archive = ["tar", "-C", str(tree), f"--exclude=./{COMPLETE}", "-c", "."]
        with subprocess.Popen(archive, stdout=subprocess.PIPE) as tar:
            imported = run(
                [require("docker"), "import", *changes, "-", name], env=self.env(), stdin=tar.stdout, timeout=300
            )
        assert tar.returncode == 0 and imported.returncode == 0, f"docker import {name}: {imported.stderr}"


def _ulimit(name: str, limit: int) -> list[str]:
    """--default-ulimit at our own hard limit: a container may not get more than we have."""
    _soft, hard = resource.getrlimit(limit)
    return [] if hard == resource.RLIM_INFINITY else ["--default-ulimit", f"{name}={hard}:{hard}"]


@contextmanager
def docker_engine(log: Path) -> Iterator[DockerEngine]:
    """dockerd running until the block ends; one at a time per machine (they share the cache)."""
    require_root("dockerd")
    with cache_lock("docker"):
        runtime = Path(tempfile.mkdtemp(prefix="hm-docker-", dir="/run"))  # socket paths must be short
        engine = DockerEngine(f"unix://{runtime}/docker.sock")
        command = [
            require("dockerd"), "--bridge=none", "--iptables=false", "--ip6tables=false",
            *_ulimit("nofile", resource.RLIMIT_NOFILE), *_ulimit("nproc", resource.RLIMIT_NPROC),
            f"--host={engine.host}", f"--data-root={CACHE / 'docker'}", f"--exec-root={runtime / 'exec'}",
            f"--pidfile={runtime / 'dockerd.pid'}",
        ]
        with log.open("wb") as out:
            daemon = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_until(
                lambda: _answers(engine, daemon, log), f"dockerd on {engine.host}", timeout=60, every=0.2
            )
            yield engine
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            _remove(runtime)


def _answers(engine: DockerEngine, daemon: subprocess.Popen[bytes], log: Path) -> bool:
    if daemon.poll() is not None:
        raise AssertionError(f"dockerd exited with {daemon.returncode}:\n{log.read_text()[-3000:]}")
    return engine.docker("version", timeout=10).returncode == 0


def _remove(runtime: Path) -> None:
    """The daemon's runtime directory, with the network namespace it leaves mounted there."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount_point in sorted((m for m in mounts if m.startswith(f"{runtime}/")), reverse=True):
        run(["umount", "--lazy", mount_point])
    shutil.rmtree(runtime, ignore_errors=True)
