"""`health-monitor once --format json` end to end for each vendor. The CLI runs its own
event loop, so these are plain tests that call its entry in-process while aioresponses
stands in for the vendors."""

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from tests.integrations.helpers import (
    CLERK_API,
    SHOPIFY_SHOP,
    XERO_API,
    XERO_IDENTITY,
    XERO_STATUS,
    VendorMock,
    fixture,
)
from tests.net import closed_port

WriteConfig = Callable[[str], Path]


@pytest.fixture(autouse=True)
def _no_monitor_env(clean_env: None) -> None:
    """No MONITOR_* variable from the developer's shell changes these configs."""


@pytest.fixture
def vendor() -> Iterator[VendorMock]:
    with VendorMock() as mocked:
        yield mocked


def once(config: Path, check: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["once", "--config", str(config), "--check", check, "--format", "json"])
    output = capsys.readouterr().out
    (result,) = json.loads(output)["checks"]
    return code, result


def finding(result: dict[str, Any], code: str) -> dict[str, Any]:
    (found,) = [f for f in result["findings"] if f["code"] == code]
    return found


XERO = """
[monitor]
name = "test"
timeout = "5s"

[checks.xero]
type = "integration"
provider = "xero"
"""


def test_xero_outage_names_the_vendor_incident(
    vendor: VendorMock, write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    vendor.get(XERO_API, status=503)
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"))
    vendor.get(XERO_STATUS, payload=fixture("statuspage_major_incident.json"))

    code, result = once(write_config(XERO), "xero", capsys)

    assert code == 2
    assert (result["check"], result["type"], result["status"]) == ("xero", "integration", "critical")
    unreachable = finding(result, "unreachable")
    assert unreachable["severity"] == "P2"
    assert unreachable["summary"].startswith(
        "upstream incident at Xero: Accounting API returning errors "
        "(https://status.xero.com/incidents/9tq4vw2mk7xc); Xero API unreachable"
    )
    assert f"GET {XERO_API}: status: HTTP 503" in unreachable["evidence"]


def test_xero_trouble_while_our_probe_passes_is_p3(
    vendor: VendorMock, write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    vendor.get(XERO_API, status=401, payload=fixture("xero_unauthorized.json"))
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"))
    vendor.get(XERO_STATUS, payload=fixture("statuspage_minor_incident.json"))

    code, result = once(write_config(XERO), "xero", capsys)

    assert code == 1
    assert finding(result, "unreachable")["severity"] is None
    upstream = finding(result, "upstream_degraded")
    assert (upstream["status"], upstream["severity"]) == ("warning", "P3")
    assert upstream["summary"].startswith("non-critical integration issue: Xero reports")


def test_xero_status_page_down_alone_is_ok(
    vendor: VendorMock, write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    vendor.get(XERO_API, status=401)
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"))
    vendor.get(XERO_STATUS, status=503)

    code, result = once(write_config(XERO), "xero", capsys)

    assert (code, result["status"]) == (0, "ok")


def test_severities_override_the_preset(
    vendor: VendorMock, write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    vendor.get(XERO_API, status=500)
    vendor.get(XERO_IDENTITY, payload=fixture("xero_openid_configuration.json"))
    vendor.get(XERO_STATUS, payload=fixture("statuspage_operational.json"))

    code, result = once(write_config(XERO + 'severities = { unreachable = "P1" }\n'), "xero", capsys)

    assert code == 2
    assert finding(result, "unreachable")["severity"] == "P1"


SHOPIFY = """
[checks.shop]
type = "integration"
provider = "shopify"
shop = "acme"
token_env = "SHOPIFY_ADMIN_TOKEN"
"""


def test_shopify_rejected_token_is_p2_while_shopify_is_up(
    vendor: VendorMock,
    write_config: WriteConfig,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOPIFY_ADMIN_TOKEN", "shpat_expired")
    vendor.get(SHOPIFY_SHOP, status=401, payload=fixture("shopify_unauthorized.json"))

    code, result = once(write_config(SHOPIFY), "shop", capsys)

    assert code == 2
    assert finding(result, "unreachable")["status"] == "ok"
    rejected = finding(result, "credentials_rejected")
    assert (rejected["status"], rejected["severity"]) == ("critical", "P2")
    assert "Shopify rejected our credentials ($SHOPIFY_ADMIN_TOKEN" in rejected["summary"]
    assert "shpat_expired" not in json.dumps(result)


def test_shopify_all_good(
    vendor: VendorMock,
    write_config: WriteConfig,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOPIFY_ADMIN_TOKEN", "shpat_good")
    vendor.get(SHOPIFY_SHOP, payload=fixture("shopify_shop.json"))

    code, result = once(write_config(SHOPIFY), "shop", capsys)

    assert code == 0
    assert sorted(f["code"] for f in result["findings"]) == ["credentials_rejected", "unreachable"]


CLERK = """
[checks.auth]
type = "integration"
provider = "clerk"
"""


def test_clerk_down_means_users_cannot_log_in(
    vendor: VendorMock, write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    vendor.get(CLERK_API, status=503)

    code, result = once(write_config(CLERK), "auth", capsys)

    assert code == 2
    unreachable = finding(result, "unreachable")
    assert unreachable["severity"] == "P2"
    assert "users cannot log in" in unreachable["summary"]


def test_tcp_through_the_cli(write_config: WriteConfig, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        config = write_config(
            f"""
[checks.db-port]
type = "tcp"
host = "127.0.0.1"
port = {port}

[checks.gone]
type = "tcp"
host = "127.0.0.1"
port = {closed_port()}
"""
        )
        up_code, up = once(config, "db-port", capsys)
        down_code, down = once(config, "gone", capsys)

    assert (up_code, up["status"]) == (0, "ok")
    assert down_code == 2
    assert finding(down, "down")["severity"] == "P2"
