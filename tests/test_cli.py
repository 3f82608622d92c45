"""`health-monitor once` and `incidents` as a user calls them."""

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web

from monitor.cli import main
from monitor.model import Incident, Severity
from monitor.store import SqliteStore
from tests.fakes import START


def app() -> web.Application:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=500)

    application = web.Application()
    application.router.add_get("/ok", ok)
    application.router.add_get("/broken", broken)
    return application


@pytest.fixture
async def target(serve) -> str:
    return f"http://127.0.0.1:{(await serve(app())).port}"


def config(tmp_path: Path, checks: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(f'[monitor]\nstate_path = "{tmp_path}/state.db"\n{checks}')
    return path


def http_check(name: str, url: str, **keys: str) -> str:
    extra = "".join(f"{key} = {value}\n" for key, value in keys.items())
    return f'\n[checks.{name}]\ntype = "http"\nurl = "{url}"\n{extra}'


async def run_cli(*args: str) -> int:
    # The CLI owns its event loop (asyncio.run), so it runs in a worker thread here.
    return await asyncio.to_thread(main, list(args))


async def test_once_exits_0_when_all_is_well(tmp_path, target, capsys) -> None:
    path = config(tmp_path, http_check("api", f"{target}/ok"))
    assert await run_cli("once", "--config", str(path)) == 0
    assert "api" in capsys.readouterr().out


async def test_once_exits_2_for_critical_with_json_findings(tmp_path, target, capsys) -> None:
    path = config(tmp_path, http_check("api", f"{target}/ok") + http_check("web", f"{target}/broken"))
    assert await run_cli("once", "--config", str(path), "--format", "json") == 2
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "critical"
    by_name = {check["check"]: check for check in report["checks"]}
    assert by_name["api"]["status"] == "ok"
    (finding,) = by_name["web"]["findings"]
    assert (finding["code"], finding["status"], finding["severity"]) == ("down", "critical", "P1")
    assert finding["evidence"] == ["failure: status"]


async def test_once_exits_1_when_the_worst_is_a_warning(tmp_path, target, capsys) -> None:
    path = config(tmp_path, http_check("api", f"{target}/ok", slow='"0ms"'))
    assert await run_cli("once", "--config", str(path), "--check", "api") == 1


async def test_once_exits_3_for_an_unknown_check_name(tmp_path, target, capsys) -> None:
    path = config(tmp_path, http_check("api", f"{target}/ok"))
    assert await run_cli("once", "--config", str(path), "--check", "nope") == 3
    assert capsys.readouterr().err.strip() == f"error: no check named nope in {path} (known: api)"


def test_incidents_lists_open_incidents_from_the_store(tmp_path, capsys) -> None:
    path = config(tmp_path, "")
    store = SqliteStore(tmp_path / "state.db")
    opened = store.create_incident(
        Incident(check="api", code="down", severity=Severity.P1, opened_at=START, summary="HTTP 503", impact="-")
    )
    store.create_incident(
        Incident(check="db", code="slow", severity=Severity.P3, opened_at=START, summary="slow", impact="-",
                 state="resolved", resolved_at=START)
    )
    store.close()
    assert main(["incidents", "--config", str(path), "--format", "json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["check"], listed["severity"]) == (opened.id, "api", "P1")
    assert main(["incidents", "--config", str(path), "--all"]) == 0
    table = capsys.readouterr().out
    assert "api/down" in table and "db/slow" in table
