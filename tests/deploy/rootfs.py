"""Debian trees made with debootstrap, for the tests that boot systemd in a container or build
the image on a local base: built once per machine under CACHE and reused (a second run takes
seconds), rebuilt when their package list or the machine's extra CA certificates change.

The extra CA certificates (/usr/local/share/ca-certificates, where a TLS-intercepting proxy's
CA lives) go into every tree, so that pip inside it reaches PyPI as the host does."""

import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.helpers import REPO, require, run

CACHE = Path(os.environ.get("HEALTH_MONITOR_TEST_CACHE", "/var/cache/health-monitor-tests"))
MIRROR = os.environ.get("HEALTH_MONITOR_TEST_MIRROR", "http://deb.debian.org/debian")
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
COMPLETE = ".health-monitor-tests-complete"


@dataclass(frozen=True)
class Rootfs:
    """`debootstrap --variant=minbase <release>` plus `packages`."""

    release: str
    packages: tuple[str, ...]

    @property
    def key(self) -> str:
        """Changes with anything that changes the tree's content."""
        digest = hashlib.sha256(" ".join((self.release, MIRROR, *self.packages)).encode())
        for certificate in extra_certificates():
            digest.update(certificate.name.encode() + certificate.read_bytes())
        return f"{self.release}-{digest.hexdigest()[:12]}"

    def path(self) -> Path:
        """The tree, built first if this machine has none yet."""
        require_root("debootstrap")
        tree = CACHE / "rootfs" / self.key
        with cache_lock(f"rootfs-{self.key}"):
            if not (tree / COMPLETE).exists():
                self._build(tree)
        return tree

    def _build(self, tree: Path) -> None:
        shutil.rmtree(tree, ignore_errors=True)
        tree.parent.mkdir(parents=True, exist_ok=True)
        command = [require("debootstrap"), "--variant=minbase", f"--include={','.join(self.packages)}"]
        built = run([*command, self.release, tree, MIRROR], timeout=900)
        output = built.stdout[-3000:] + built.stderr[-3000:]
        assert built.returncode == 0, f"debootstrap {self.release} failed:\n{output}"
        for certificate in extra_certificates():
            shutil.copy(certificate, tree / "usr/local/share/ca-certificates" / certificate.name)
        updated = run(["chroot", tree, "update-ca-certificates"])
        assert updated.returncode == 0, updated.stdout + updated.stderr
        shutil.rmtree(tree / "var/lib/apt/lists", ignore_errors=True)
        shutil.rmtree(tree / "var/cache/apt/archives", ignore_errors=True)
        (tree / COMPLETE).write_text(self.key + "\n")


def extra_certificates() -> list[Path]:
    return sorted(EXTRA_CA_DIR.glob("*.crt")) if EXTRA_CA_DIR.is_dir() else []


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        pytest.fail(f"{why} needs root: run the deploy tests as root (CI does)")


@contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Held while one test run builds or uses a cached thing that two runs must not share."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def copy_checkout(destination: Path) -> Path:
    """What `pip install /path/to/checkout` needs of this checkout, working tree as it is."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, destination / name)
    for package in ("monitor", "checks", "alerting"):
        shutil.copytree(REPO / package, destination / package, ignore=shutil.ignore_patterns("__pycache__"))
    return destination
