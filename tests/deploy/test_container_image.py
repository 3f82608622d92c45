"""deploy/container/Dockerfile built, unmodified, by a real Docker engine on a local base image
(debootstrap's bookworm with python3, python3-venv and ca-certificates, imported under the
name of the Dockerfile's FROM), then run: as a non-root user, healthy by its own HEALTHCHECK at
the address MONITOR_SERVER__LISTEN gives, and stopped by `docker stop` with exit status 0
(a container still running after the 10 s grace is killed: 137). The README's `check-config`
example runs as written."""

import json
import re
import shlex
from collections.abc import Iterator

import pytest

from tests.deploy.docker_engine import DockerEngine, docker_engine
from tests.deploy.helpers import DEPLOY, REPO, http_get, require, run, wait_until
from tests.deploy.rootfs import Rootfs
from tests.net import free_port

DOCKERFILE = DEPLOY / "container" / "Dockerfile"
IMAGE = "health-monitor"  # the tag the README's commands use
BASE_ROOTFS = Rootfs("bookworm", ("python3", "python3-venv", "ca-certificates"))
IMAGE_UID = "10001"
STOP_GRACE = 10


def base_image_name() -> str:
    (name,) = {line.split()[1] for line in DOCKERFILE.read_text().splitlines() if line.startswith("FROM ")}
    return name


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    with docker_engine(tmp_path_factory.mktemp("dockerd") / "dockerd.log") as started:
        started.import_base(base_image_name(), BASE_ROOTFS)
        yield started


@pytest.fixture(scope="module")
def build_output(engine: DockerEngine) -> str:
    built = engine.docker("build", "--network=host", "-f", str(DOCKERFILE), "-t", IMAGE, str(REPO), timeout=900)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    engine.docker("image", "prune", "--force")  # the previous builds' layers: the cache stays one image big
    return built.stdout


def test_the_build_context_is_only_what_the_dockerfile_copies(build_output: str) -> None:
    """The root .dockerignore keeps .venv, .git and test artifacts out (125 MB without it)."""
    sent = re.search(r"Sending build context to Docker daemon\s+([\d.]+)([kKMG]?B)", build_output)
    assert sent, build_output[:2000]
    size, unit = float(sent.group(1)), sent.group(2).upper()
    assert unit in ("B", "KB") or (unit == "MB" and size < 5), f"build context of {size} {unit}"


def test_the_image_runs_as_non_root_turns_healthy_and_stops_cleanly(engine: DockerEngine, build_output: str) -> None:
    port, closed = free_port(), free_port()
    name = f"health-monitor-test-{port}"
    started = engine.docker(
        "run", "--detach", "--name", name, "--network=host", "--health-interval=1s",
        "--env", f"MONITOR_SERVER__LISTEN=127.0.0.1:{port}",
        "--env", f"DATABASE_URL=postgresql://monitor:demo@127.0.0.1:{closed}/app",
        IMAGE,
    )
    assert started.returncode == 0, started.stderr
    try:
        wait_until(lambda: _health(engine, name) == "healthy", f"{name} healthy\n{_logs(engine, name)}", timeout=90)
        status, _ = http_get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200
        user = engine.docker("exec", name, "id", "-u")
        assert user.stdout.strip() == IMAGE_UID, user.stdout + user.stderr

        stopped = engine.docker("stop", "--time", str(STOP_GRACE), name, timeout=STOP_GRACE + 30)
        assert stopped.returncode == 0, stopped.stderr
        state = json.loads(engine.docker("inspect", "--format", "{{json .State}}", name).stdout)
        killed = f"exit {state['ExitCode']} (137: still running after {STOP_GRACE}s, killed)"
        assert state["ExitCode"] == 0, f"{killed}\n{_logs(engine, name)}"
    finally:
        engine.docker("rm", "--force", name)


def test_the_healthcheck_fails_while_nothing_listens_where_the_config_says(
    engine: DockerEngine, build_output: str
) -> None:
    """The HEALTHCHECK command itself, with MONITOR_SERVER__LISTEN naming a port nobody serves."""
    closed = free_port()
    probe = engine.docker(
        "run", "--rm", "--network=host", "--env", "DATABASE_URL=postgresql://monitor:demo@db/app",
        "--env", f"MONITOR_SERVER__LISTEN=0.0.0.0:{closed}",
        "--entrypoint", "python", IMAGE, "-m", "monitor.healthcheck",
    )
    assert probe.returncode == 1, probe.stdout + probe.stderr
    assert f"http://127.0.0.1:{closed}/healthz" in probe.stderr


def test_the_readme_check_config_example_works_as_written(engine: DockerEngine, build_output: str) -> None:
    (example,) = re.findall(r"`(docker run --rm [^`]*check-config[^`]*)`", (REPO / "README.md").read_text())
    result = run(shlex.split(example), env=engine.env())
    assert result.returncode == 0, f"{example}\n{result.stdout}{result.stderr}"


def test_docker_compose_accepts_the_compose_file() -> None:
    compose = DEPLOY / "container" / "compose.yaml"
    result = run([require("docker-compose"), "-f", str(compose), "config", "--quiet"], cwd=compose.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def _health(engine: DockerEngine, name: str) -> str:
    inspected = engine.docker("inspect", "--format", "{{json .State}}", name)
    assert inspected.returncode == 0, inspected.stderr
    state = json.loads(inspected.stdout)
    assert state["Running"], f"{name} exited with {state['ExitCode']}\n{_logs(engine, name)}"
    health: str = state["Health"]["Status"]
    return health


def _logs(engine: DockerEngine, name: str) -> str:
    logs = engine.docker("logs", "--tail", "40", name)
    return (logs.stdout + logs.stderr)[-4000:]


