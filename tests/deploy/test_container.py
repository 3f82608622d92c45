"""deploy/container as files: the Dockerfile's instructions, the build context it gets, and the
compose file (parsed by PyYAML, installed into a temporary directory, never into the project)
with every file it mounts present. test_container_image.py builds and runs the image."""

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.helpers import DEPLOY, REPO, run

CONTAINER = DEPLOY / "container"
DOCKERFILE = CONTAINER / "Dockerfile"
EXAMPLE_CONFIG = CONTAINER / "monitor.toml"
REPLICAS_CONFIG = CONTAINER / "replicas.toml"
COMPOSE = CONTAINER / "compose.yaml"
IMAGE_CONFIG_PATH = "/etc/health-monitor/monitor.toml"


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
    assert healthcheck_command() == ["python", "-m", "monitor.healthcheck"]
    assert f"MONITOR_CONFIG={IMAGE_CONFIG_PATH}" in instruction(runtime, "ENV")


def healthcheck_command() -> list[str]:
    _build, runtime = dockerfile_stages()
    options, _, command = instruction(runtime, "HEALTHCHECK").partition(" CMD ")
    assert "--interval=" in options
    parsed: list[str] = json.loads(command)
    return parsed


def test_the_build_context_lets_through_what_the_dockerfile_copies() -> None:
    ignore = (REPO / ".dockerignore").read_text().split()
    assert ignore[ignore.index("**") + 1:], "everything is ignored"
    for source, _ in build_context_copies():
        assert f"!{source}" in ignore or f"!{source}/" in ignore, source
    assert "!deploy/container/monitor.toml" in ignore


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


def test_compose_runs_two_replicas_beside_prometheus_alertmanager_and_postgres(yaml_documents: dict) -> None:
    compose = yaml_documents["container/compose.yaml"]
    services = compose["services"]
    assert {"monitor", "monitor-2", "db", "prometheus", "alertmanager"} <= set(services)
    replicas = [services["monitor"], services["monitor-2"]]
    for monitor in replicas:
        assert (CONTAINER / monitor["build"]["context"] / monitor["build"]["dockerfile"]).resolve() == DOCKERFILE
        assert f"./replicas.toml:{IMAGE_CONFIG_PATH}:ro" in monitor["volumes"]
        assert "@db:5432/app" in monitor["environment"]["DATABASE_URL"]
        assert "@db:5432/health_monitor" in monitor["environment"]["STATE_DSN"]
    assert {monitor["environment"]["MONITOR_MONITOR__NODE"] for monitor in replicas} == {"monitor", "monitor-2"}
    assert len({volume for monitor in replicas for volume in monitor["volumes"]}) == 3, "a state volume each"
    assert "CREATE DATABASE health_monitor" in (CONTAINER / "initdb" / "health-monitor-state.sql").read_text()
    assert "DATABASE_URL" in EXAMPLE_CONFIG.read_text()
    assert 'state_dsn_env = "STATE_DSN"' in REPLICAS_CONFIG.read_text()
    scrape = yaml_documents["prometheus/prometheus.yml"]["scrape_configs"][0]
    assert scrape["job_name"] == "health-monitor"
    assert scrape["static_configs"][0]["targets"] == ["monitor:8573", "monitor-2:8573"]


def test_the_replicas_config_is_the_single_process_one_with_its_state_on_postgresql() -> None:
    """replicas.toml keeps monitor.toml's checks and sinks: only where the state lives differs."""
    def body(path: Path) -> list[str]:
        lines = [line.split("#")[0].rstrip() for line in path.read_text().splitlines()]
        return [line for line in lines if line and not line.startswith(("state_", "leader_lease"))]

    assert body(REPLICAS_CONFIG) == body(EXAMPLE_CONFIG)


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
