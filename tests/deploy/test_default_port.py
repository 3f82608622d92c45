"""The default listen port: on no entry of Prometheus's "Default port allocations" wiki page
(https://github.com/prometheus/prometheus/wiki/Default-port-allocations), so that the daemon
does not collide with an exporter on the same host, and the same port in every file we ship."""

import re
import tomllib

from monitor.config import ServerSection
from tests.deploy.helpers import DEPLOY, REPO

# The page's tables: its core components, its standard exporter range (every port of which is
# taken), the range it has continued into since, and its "outside of the standard port ranges"
# table.
ALLOCATED_RANGES = (range(9090, 9095), range(9100, 10000), range(10000, 10100))
ALLOCATED_ELSEWHERE = {
    3903, 7300, 8080, 8082, 8088, 8089, 8292, 8404, 9042, 9087, 9095, 9097, 9099,
    16995, 19091, 19999, 24231, 42004, 44322, 61091,
}

DEFAULT_PORT = ServerSection().port


def test_the_default_port_is_on_no_prometheus_allocation() -> None:
    assert DEFAULT_PORT not in ALLOCATED_ELSEWHERE
    assert not any(DEFAULT_PORT in allocated for allocated in ALLOCATED_RANGES), DEFAULT_PORT


def test_the_default_port_is_below_the_ephemeral_range() -> None:
    """Linux hands out 32768-60999 to outgoing connections: a listener there can find it taken."""
    assert 1024 < DEFAULT_PORT < 32768


def listen_port(config: str) -> int:
    return int(tomllib.loads((REPO / config).read_text())["server"]["listen"].rpartition(":")[2])


def test_every_shipped_file_listens_on_and_scrapes_the_default_port() -> None:
    assert listen_port("monitor.toml") == DEFAULT_PORT
    assert listen_port("deploy/container/monitor.toml") == DEFAULT_PORT
    assert listen_port("deploy/container/replicas.toml") == DEFAULT_PORT
    assert listen_port("deploy/systemd/monitor.toml") == DEFAULT_PORT
    scraped = f'targets: ["monitor:{DEFAULT_PORT}", "monitor-2:{DEFAULT_PORT}"]'
    assert scraped in (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert f'"127.0.0.1:{DEFAULT_PORT}:{DEFAULT_PORT}"' in (DEPLOY / "container" / "compose.yaml").read_text()
    assert re.search(rf"^EXPOSE {DEFAULT_PORT}$", (DEPLOY / "container" / "Dockerfile").read_text(), re.MULTILINE)
    readme = (REPO / "README.md").read_text()
    assert f'| `listen` | `"127.0.0.1:{DEFAULT_PORT}"` |' in readme


def test_no_shipped_config_names_the_graphite_exporters_port() -> None:
    shipped = [REPO / "monitor.toml", *(path for path in DEPLOY.rglob("*") if path.is_file())]
    for path in shipped:
        assert not re.search(r"\b9108\b", path.read_text()), f"{path.relative_to(REPO)} still uses 9108"
