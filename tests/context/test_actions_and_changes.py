"""Remediation targets, the CLI's refusal to act unasked, Railway's webhook bodies, and the
ordering promise of the context hold: nothing about an incident overtakes its page."""

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from monitor.cli import main
from monitor.context.actions import ActionError, choose
from monitor.context.changes import Change, parse_railway_webhook
from monitor.context.journal import SqliteJournal
from monitor.context.railway.parse import parse_deployments
from monitor.context.service import ContextService
from monitor.model import Incident
from monitor.sqlite_file import SqliteFile
from monitor.sqlite_thread import SqliteThread
from tests.context.helpers import RAILWAY_TOKEN, deployment, deployments_answer
from tests.fakes import START, FakeClock
from tests.incident_harness import DOWN, UP, Harness, http_check, write_config
from tests.integrations.helpers import VendorMock
from tests.net import wait_until
from tests.store_seed import create_incident

DEPLOYMENTS = parse_deployments(deployments_answer()["data"])


@pytest.fixture
async def state_file(tmp_path: Path) -> AsyncIterator[SqliteThread]:
    """The harness's state file, for the context journal."""
    file = await SqliteThread.open(tmp_path / "state.db")
    yield file
    await file.close()


def test_restart_and_redeploy_act_on_the_running_deployment() -> None:
    assert choose("restart", DEPLOYMENTS, None).deployment_id == "d-3"
    assert choose("redeploy", DEPLOYMENTS, None).describe() == 'redeploy of d-3 (abc1234 "fix checkout")'
    with pytest.raises(ActionError, match="--to is for rollback only"):
        choose("restart", DEPLOYMENTS, "d-1")


def test_rollback_goes_to_the_last_success_before_the_current_one_that_can_roll_back() -> None:
    assert choose("rollback", DEPLOYMENTS, None).describe() == 'rollback to d-1 (0ld1111 "add invoices")'
    assert choose("rollback", DEPLOYMENTS, "d-2").deployment_id == "d-2", "--to is the person's call"
    stuck = parse_deployments({"deployments": {"edges": [
        deployment("d-3", "SUCCESS", 4, "abc1234", "fix checkout"),
        deployment("d-1", "SUCCESS", 120, "0ld1111", "add invoices", can_rollback=False),
    ]}})
    with pytest.raises(ActionError, match="no earlier SUCCESS deployment that can be rolled back to"):
        choose("rollback", stuck, None)


def test_the_cli_refuses_to_act_off_a_terminal_without_yes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clean_env: None
) -> None:
    monkeypatch.setenv("RAILWAY_TOKEN", RAILWAY_TOKEN)
    config = write_config(tmp_path, http_check("api"), extra="""
[context.railway]
token_env = "RAILWAY_TOKEN"
project_id = "p"
environment_id = "e"
service_id = "s"
api_url = "http://127.0.0.1:9/graphql/v2"
""")
    with SqliteFile(tmp_path / "state.db") as store:
        incident = create_incident(store, Incident(check="api", code="down", severity="P1", opened_at=START,
                                                   summary="down", impact="down"))
    assert main(["action", str(incident.id), "restart", "--config", str(config)]) == 1
    assert capsys.readouterr().err == "error: not on a terminal: add --yes to run the action without confirmation\n"
    assert main(["action", str(incident.id), "restart", "--yes", "--config", str(config)]) == 1
    assert capsys.readouterr().err == "error: Railway: unreachable (ClientConnectorError)\n"
    assert main(["action", "99", "restart", "--yes", "--config", str(config)]) == 1
    assert capsys.readouterr().err == "error: no incident 99\n"


def test_on_a_terminal_the_cli_asks_first_and_no_means_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clean_env: None
) -> None:
    monkeypatch.setenv("RAILWAY_TOKEN", RAILWAY_TOKEN)
    config = write_config(tmp_path, http_check("api"), extra="""
[context.railway]
token_env = "RAILWAY_TOKEN"
project_id = "p"
environment_id = "e"
service_id = "s"
""")
    with SqliteFile(tmp_path / "state.db") as store:
        incident = create_incident(store, Incident(check="api", code="down", severity="P1", opened_at=START,
                                                   summary="down", impact="down"))
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    with VendorMock() as vendor:
        vendor.post("https://backboard.railway.com/graphql/v2", payload=deployments_answer())
        assert main(["action", str(incident.id), "rollback", "--config", str(config)]) == 1
        (call,) = vendor.requests[("POST", URL("https://backboard.railway.com/graphql/v2"))]
    assert "deploymentRollback" not in call.kwargs["json"]["query"], "only the deployments were read"
    assert asked == ['Run rollback to d-1 (0ld1111 "add invoices") for incident #1 (api/down) on Railway? [y/N] ']
    assert capsys.readouterr().out == "nothing done\n"


def test_a_railway_deployment_webhook_becomes_one_change() -> None:
    change = parse_railway_webhook({
        "type": "Deployment.failed", "timestamp": "2026-11-26T18:55:00.000Z",
        "details": {"id": "d-4", "status": "FAILED", "branch": "main", "commitHash": "def5678aaa",
                    "commitAuthor": "carol", "commitMessage": "hotfix\n<!channel>"},
        "resource": {"service": {"id": "s-web", "name": "web"}, "deployment": {"id": "d-4"}},
    }, START)
    assert change.at == START - timedelta(minutes=5)
    assert change.describe() == 'deploy def5678 FAILED: "hotfix <!channel>" by carol (main)'
    for body, problem in [
        ([], "the body must be a JSON object"),
        ({"type": "Volume.alert"}, "not a deployment event: Volume.alert"),
        ({"type": "Deployment.deployed", "resource": {}}, "needs resource.service and a deployment id"),
    ]:
        with pytest.raises(ValueError, match=problem):
            parse_railway_webhook(body, START)


async def test_events_of_an_incident_wait_behind_its_page_while_context_is_gathered(
    tmp_path: Path,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    http_session: aiohttp.ClientSession,
    state_file: SqliteThread,
) -> None:
    monkeypatch.setenv("SENTRY_TOKEN", "sentry-token-123456")
    sentry = '[context.sentry]\ntoken_env = "SENTRY_TOKEN"\norganization = "acme"\nproject_id = 1\n'
    check = http_check("api", failure_threshold="1", success_threshold="1")
    harness = await Harness.open(write_config(tmp_path, check, extra=sentry, sinks=("oncall",)), fake_clock)
    hold = ContextService(harness.config, harness.pipeline, http_session, fake_clock, SqliteJournal(state_file))
    harness.pipeline.route = hold.route

    async def hang(*_: object, **__: object) -> None:
        await asyncio.Event().wait()

    with VendorMock() as vendor:
        vendor.get(re.compile(r"^https://sentry\.io/.*$"), callback=hang)
        await harness.pipeline.commit(harness.manager.observe("api", [DOWN], fake_clock.now()))
        await harness.pipeline.commit(harness.manager.observe("api", [UP], fake_clock.now()))
        await fake_clock.advance(4.9)
        assert harness.sinks["oncall"].received == [], "neither the page nor the resolution went out yet"
        await fake_clock.advance(0.1)
        await wait_until(lambda: len(harness.sinks["oncall"].received) == 2, "the page and the resolution")
    received = harness.sinks["oncall"].received
    assert [r.kind.value for r in received] == ["initial", "resolution"]
    assert received[0].notification.incident.context is not None, "the page carries what was gathered"
    (incident,) = await harness.store.recent_incidents()
    assert [e.kind for e in incident.timeline].count("context") == 1
    await hold.close()
    await harness.close()


async def test_changes_of_the_hour_before_join_the_timeline_at_their_time(
    tmp_path: Path,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    http_session: aiohttp.ClientSession,
    state_file: SqliteThread,
) -> None:
    monkeypatch.setenv("RAILWAY_TOKEN", RAILWAY_TOKEN)
    railway = ('[context.railway]\ntoken_env = "RAILWAY_TOKEN"\nproject_id = "p"\nenvironment_id = "e"\n'
               'service_id = "s-web"\nstatus_url = ""\n')
    check = http_check("api", failure_threshold="1")
    harness = await Harness.open(write_config(tmp_path, check, extra=railway, sinks=("oncall",)), fake_clock)
    hold = ContextService(harness.config, harness.pipeline, http_session, fake_clock, SqliteJournal(state_file))
    harness.pipeline.route = hold.route
    for minutes, deployment_id, service in ((90, "d-0", "s-web"), (10, "d-3", "s-web"), (5, "w-1", "s-worker")):
        await hold.record_change(Change(at=START - timedelta(minutes=minutes), service_id=service,
                                  deployment_id=deployment_id, event="Deployment.deployed", status="SUCCESS",
                                  commit_hash=f"{deployment_id}-commit"))
    with VendorMock() as vendor:
        vendor.post("https://backboard.railway.com/graphql/v2", payload=deployments_answer())
        vendor.post("https://backboard.railway.com/graphql/v2", payload={"data": {"deploymentLogs": []}})
        await harness.pipeline.commit(harness.manager.observe("api", [DOWN], fake_clock.now()))
        await wait_until(lambda: harness.sinks["oncall"].received, "the page")
    (incident,) = await harness.store.open_incidents()
    assert [(event.at, event.kind, event.text) for event in incident.timeline][:3] == [
        (START - timedelta(minutes=10), "change", "deploy d-3-com SUCCESS"),
        (START, "first_failure", "first failing run: GET http://127.0.0.1/health failed: HTTP 503"),
        (START, "opened", "incident opened at P1"),
    ]
    assert [event.kind for event in incident.timeline].count("change") == 1, "not the other service's, nor older"
    await hold.close()
    await harness.close()


async def test_a_state_file_that_cannot_be_read_holds_up_no_tick(
    tmp_path: Path, fake_clock: FakeClock, http_session: aiohttp.ClientSession, state_file: SqliteThread
) -> None:
    harness = await Harness.open(write_config(tmp_path, http_check("api"), sinks=("oncall",)), fake_clock)
    service = ContextService(harness.config, harness.pipeline, http_session, fake_clock, SqliteJournal(state_file))
    await state_file.close()
    await service.apply_recorded_actions()  # logged, not raised: the daemon's tick goes on to escalations
    await harness.close()
