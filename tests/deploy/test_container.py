"""deploy/container without a Docker engine (none runs here): the Dockerfile's build stage is
replayed into a clean virtualenv (its COPY lines, then `pip install .`), the image's entry
command runs from it with the example config and answers the image's HEALTHCHECK, and the
compose file parses (PyYAML installed into a temporary directory, never into the project)
with every file it mounts present."""

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.helpers import DEPLOY, REPO, DaemonProcess, clean_environment, http_get, run, wait_until
from tests.net import free_port

CONTAINER = DEPLOY / "container"
DOCKERFILE = CONTAINER / "Dockerfile"
EXAMPLE_CONFIG = CONTAINER / "monitor.toml"
COMPOSE = CONTAINER / "compose.yaml"
IMAGE_CONFIG_PATH = "/etc/health-monitor/monitor.toml"
DATABASE_URL = "postgresql://monitor:s3cret-compose-password@db:5432/app"
COMPOSE_HOSTS = ("db", "prometheus", "alertmanager")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions (continuation lines joined), one list per FROM."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: list[list[Instruction]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append(Instruction(keyword.upper(), arguments.strip()))
    return stages


def instruction(stage: list[Instruction], keyword: str) -> str:
    (found,) = [item.arguments for item in stage if item.keyword == keyword]
    return found


def build_context_copies() -> list[tuple[str, str]]:
    """(source in the repository, destination under WORKDIR) of the build stage's COPY lines."""
    build, _runtime = dockerfile_stages()
    copies = []
    for item in build:
        if item.keyword == "COPY":
            *sources, destination = shlex.split(item.arguments)
            copies += [(source, destination) for source in sources]
    return copies


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's /opt/health-monitor, built the way the Dockerfile's build stage builds it."""
    root = tmp_path_factory.mktemp("image")
    build, _runtime = dockerfile_stages()
    assert instruction(build, "WORKDIR") == "/src"
    source = root / "src"
    source.mkdir()
    for path, destination in build_context_copies():
        target = source / destination if destination.endswith("/") else source / destination.removeprefix("./")
        origin = REPO / path
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(origin, target if not destination.endswith("/") else target / origin.name)
    venv = root / "venv"
    created = run([sys.executable, "-m", "venv", venv])
    assert created.returncode == 0, created.stderr
    installed = run([venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", source], timeout=300)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return venv


def test_the_dockerfile_builds_a_slim_non_root_image_with_a_healthcheck() -> None:
    build, runtime = dockerfile_stages()
    assert instruction(build, "FROM") == "python:3.11-slim AS build"
    assert instruction(runtime, "FROM") == "python:3.11-slim"
    copies = [item.arguments for item in runtime if item.keyword == "COPY"]
    assert "--from=build /opt/health-monitor /opt/health-monitor" in copies
    assert instruction(runtime, "USER") not in ("root", "0", "0:0")
    assert json.loads(instruction(runtime, "VOLUME")) == ["/var/lib/health-monitor"]
    assert instruction(runtime, "STOPSIGNAL") == "SIGTERM"
    assert json.loads(instruction(runtime, "ENTRYPOINT")) == ["health-monitor"]
    assert json.loads(instruction(runtime, "CMD")) == ["run", "--config", IMAGE_CONFIG_PATH]
    command = healthcheck_command()
    assert command[0] == "python" and "/healthz" in command[-1]


def healthcheck_command() -> list[str]:
    _build, runtime = dockerfile_stages()
    options, _, command = instruction(runtime, "HEALTHCHECK").partition(" CMD ")
    assert "--interval=" in options
    parsed: list[str] = json.loads(command)
    return parsed


def test_the_build_context_lets_through_what_the_dockerfile_copies() -> None:
    ignore = (CONTAINER / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("**") + 1:], "everything is ignored"
    for source, _ in build_context_copies():
        assert f"!{source}" in ignore or f"!{source}/" in ignore, source
    assert "!deploy/container/monitor.toml" in ignore


def test_check_config_passes_from_a_clean_install(image_venv: Path) -> None:
    result = run(
        [image_venv / "bin" / "health-monitor", "check-config", "--config", EXAMPLE_CONFIG],
        env=clean_environment(DATABASE_URL=DATABASE_URL, COLUMNS="200"),
        cwd=image_venv.parent,
    )
    assert result.returncode == 0, result.stderr
    assert "4 checks" in result.stdout and "0.0.0.0:8573" in result.stdout
    assert "s3cret-compose-password" not in result.stdout + result.stderr


def test_the_image_command_runs_and_answers_its_healthcheck(image_venv: Path, tmp_path: Path) -> None:
    port, closed = free_port(), free_port()
    config = tmp_path / "monitor.toml"
    config.write_text(loopback_copy(EXAMPLE_CONFIG.read_text(), tmp_path, port, closed))
    database_url = DATABASE_URL.replace("@db:5432", f"@127.0.0.1:{closed}")
    daemon = DaemonProcess(
        config, port, clean_environment(DATABASE_URL=database_url), command=[str(image_venv / "bin" / "health-monitor")]
    )
    try:
        daemon.start()
        python, *arguments = healthcheck_command()
        probe = [str(image_venv / "bin" / python), *(part.replace(":8573/", f":{port}/") for part in arguments)]
        wait_until(lambda: run(probe).returncode == 0, "the image's HEALTHCHECK to pass")
        status, page = http_get(daemon.url("/"))
        assert status == 200 and "compose-demo" in page
        daemon.signal(signal.SIGTERM)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    assert (tmp_path / "state" / "health-monitor.db").exists()


def loopback_copy(text: str, state_dir: Path, port: int, closed_port: int) -> str:
    """The example config with its listen address, state paths and compose hosts moved onto this
    machine: the daemon on 127.0.0.1:`port`, every other service on a closed loopback port."""
    text = text.replace("0.0.0.0:8573", f"127.0.0.1:{port}").replace("127.0.0.1:8573", f"127.0.0.1:{port}")
    text = text.replace("/var/lib/health-monitor/", f"{state_dir}/state/")
    for host in COMPOSE_HOSTS:
        text = re.sub(rf"://{host}:\d+", f"://127.0.0.1:{closed_port}", text)
    assert not re.search(rf"://({'|'.join(COMPOSE_HOSTS)})[:/]", text)
    return text


@pytest.fixture(scope="module")
def yaml_documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The deploy YAML files parsed by PyYAML, installed into a temporary directory for this test only."""
    target = tmp_path_factory.mktemp("pyyaml")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    installed = run([*pip, "--target", target, "pyyaml"], timeout=120)
    assert installed.returncode == 0, installed.stderr[-3000:]
    files = [COMPOSE, *sorted(DEPLOY.glob("prometheus/*.yml")), *sorted(DEPLOY.glob("grafana/provisioning/*/*.yml"))]
    script = "import json, sys, yaml; print(json.dumps({p: yaml.safe_load(open(p)) for p in sys.argv[1:]}))"
    parsed = subprocess.run(
        [sys.executable, "-c", script, *map(str, files)],
        capture_output=True, text=True, check=False, env={"PYTHONPATH": str(target)},
    )
    assert parsed.returncode == 0, parsed.stderr
    documents: dict[str, object] = json.loads(parsed.stdout)
    return {str(Path(path).relative_to(DEPLOY)): document for path, document in documents.items()}


def test_compose_runs_the_daemon_beside_prometheus_alertmanager_and_postgres(yaml_documents: dict) -> None:
    compose = yaml_documents["container/compose.yaml"]
    services = compose["services"]
    assert {"monitor", "db", "prometheus", "alertmanager"} <= set(services)
    monitor = services["monitor"]
    assert (CONTAINER / monitor["build"]["context"] / monitor["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert f"./monitor.toml:{IMAGE_CONFIG_PATH}:ro" in monitor["volumes"]
    assert "@db:5432/" in monitor["environment"]["DATABASE_URL"]
    assert "DATABASE_URL" in EXAMPLE_CONFIG.read_text()
    scrape = yaml_documents["prometheus/prometheus.yml"]["scrape_configs"][0]
    assert scrape["job_name"] == "health-monitor"
    assert scrape["static_configs"][0]["targets"] == ["monitor:8573"]


def test_every_file_compose_mounts_exists(yaml_documents: dict) -> None:
    compose = yaml_documents["container/compose.yaml"]
    named = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (CONTAINER / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
    assert all(document is not None for document in yaml_documents.values())
