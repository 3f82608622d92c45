"""`health-monitor once` and `incidents` as a user calls them."""

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web

from monitor.cli import main
from monitor.model import Incident, Severity
from monitor.sqlite_file import SqliteFile
from tests.fakes import START
from tests.net import closed_port
from tests.store_seed import create_incident


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
    path.write_text(
        f'[monitor]\nstate_path = "{tmp_path}/state.db"\nincident_log = "{tmp_path}/incidents.log"\n'
        f'postmortem_dir = "{tmp_path}/postmortems"\n{checks}'
    )
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
    store = SqliteFile(tmp_path / "state.db")
    opened = create_incident(store,
        Incident(check="api", code="down", severity=Severity.P1, opened_at=START, summary="HTTP 503", impact="-")
    )
    create_incident(store,
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


def test_ack_records_the_acknowledgement_for_the_daemon(tmp_path, capsys) -> None:
    path = config(tmp_path, "")
    store = SqliteFile(tmp_path / "state.db")
    opened = create_incident(store,
        Incident(check="api", code="down", severity=Severity.P1, opened_at=START, summary="HTTP 503", impact="-")
    )
    store.close()
    assert main(["ack", str(opened.id), "--by", "alice", "--note", "on it", "--config", str(path)]) == 0
    assert "acknowledged #1 (api/down) as alice" in capsys.readouterr().out
    assert main(["ack", "42", "--config", str(path)]) == 1
    assert capsys.readouterr().err.strip() == "error: no incident 42"
    store = SqliteFile(tmp_path / "state.db")
    (request,) = store.unapplied_acknowledgements()
    store.close()
    assert (request.incident_id, request.by, request.note) == (opened.id, "alice", "on it")


def test_postmortem_prints_the_draft_of_any_incident(tmp_path, capsys) -> None:
    path = config(tmp_path, "")
    store = SqliteFile(tmp_path / "state.db")
    incident = Incident(check="api", code="down", severity=Severity.P2, opened_at=START, summary="HTTP 503",
                        impact="checkout fails")
    incident.record(START, "opened", "incident opened at P2")
    opened = create_incident(store, incident)
    store.close()
    assert main(["postmortem", str(opened.id), "--config", str(path)]) == 0
    draft = capsys.readouterr().out
    assert draft.startswith("# Incident Post-Mortem: api down (api/down)")
    assert "Severity: P2" in draft and "2026-11-26T19:00:00Z: incident opened at P2" in draft
    output = tmp_path / "pm.md"
    assert main(["postmortem", str(opened.id), "--output", str(output), "--config", str(path)]) == 0
    assert output.read_text() == draft
    assert main(["postmortem", "9", "--config", str(path)]) == 1


def test_silences_are_added_listed_and_removed(tmp_path, capsys) -> None:
    path = config(tmp_path, http_check("api", "http://127.0.0.1:9/"))
    SqliteFile(tmp_path / "state.db").close()  # the daemon's, as it would be
    assert main(["silence", "add", "--check", "api", "--for", "1h", "--reason", "deploy", "--config", str(path)]) == 0
    assert capsys.readouterr().out.startswith("silence #1: api until ")
    assert main(["silence", "--config", str(path), "list"]) == 0
    assert "deploy" in capsys.readouterr().out
    assert main(["silence", "add", "--check", "nope", "--for", "1h", "--reason", "x", "--config", str(path)]) == 1
    assert "no check named nope" in capsys.readouterr().err
    assert main(["silence", "add", "--check", "api", "--for", "soon", "--reason", "x", "--config", str(path)]) == 1
    assert "--for: invalid duration 'soon'" in capsys.readouterr().err
    assert main(["silence", "remove", "1", "--config", str(path)]) == 0
    assert main(["silence", "remove", "1", "--config", str(path)]) == 1


async def test_once_notify_opens_and_resolves_incidents_for_cron_use(tmp_path, serve) -> None:
    healthy = {"now": False}

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, status=200 if healthy["now"] else 503)

    application = web.Application()
    application.router.add_get("/health", health)
    server = await serve(application)
    alerts = tmp_path / "alerts.log"
    path = config(
        tmp_path,
        http_check("api", f"http://127.0.0.1:{server.port}/health")
        + 'impact = "customers cannot use the app"\n'
        + f'\n[sinks.file]\ntype = "file"\npath = "{alerts}"\n',
    )
    assert await run_cli("once", "--notify", "--config", str(path)) == 2
    assert alerts.read_text().count("INCIDENT DETECTED") == 1
    assert await run_cli("once", "--notify", "--config", str(path)) == 2
    assert alerts.read_text().count("INCIDENT DETECTED") == 1
    healthy["now"] = True
    assert await run_cli("once", "--notify", "--config", str(path)) == 0
    assert alerts.read_text().count("INCIDENT RESOLVED") == 1
    assert await run_cli("once", "--config", str(path)) == 0
    assert alerts.read_text().count("INCIDENT") == 2


async def test_once_notify_concludes_nothing_while_the_monitor_is_cut_off(tmp_path, serve) -> None:
    async def down(_: web.Request) -> web.Response:
        return web.json_response({"status": "down"}, status=503)

    application = web.Application()
    application.router.add_get("/health", down)
    server = await serve(application)
    alerts = tmp_path / "alerts.log"
    path = config(
        tmp_path,
        http_check("api", f"http://127.0.0.1:{server.port}/health")
        + f'\n[sinks.file]\ntype = "file"\npath = "{alerts}"\n',
    )
    cut_off = f'[monitor]\nconnectivity_check = "127.0.0.1:{closed_port()}"\n'
    path.write_text(path.read_text().replace("[monitor]\n", cut_off))
    await run_cli("once", "--notify", "--config", str(path))
    with SqliteFile(tmp_path / "state.db") as store:
        assert [incident.key for incident in store.open_incidents()] == ["_monitor/connectivity"]
    assert "monitor cannot reach the network" in alerts.read_text()
