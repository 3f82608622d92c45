"""Every Railway and Sentry call against aioresponses, with the documented shapes: the
answer we need, and each way a vendor fails (401, 429 with Retry-After, GraphQL errors in
a 200, a timeout, garbage) as one short line."""

import re
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from monitor.context.config import RailwayEntry, SentryEntry
from monitor.context.railway.client import RailwayClient
from monitor.context.sentry.client import SentryClient
from monitor.context.vendor import VendorError
from tests.context.helpers import (
    RAILWAY_TOKEN,
    SENTRY_TOKEN,
    deployments_answer,
    logs_answer,
    sentry_issues,
)
from tests.fakes import START
from tests.integrations.helpers import VendorMock

RAILWAY = "https://backboard.railway.com/graphql/v2"
RAILWAY_STATUS = "https://api.railwaystatus.com/status"
SENTRY_ISSUES = re.compile(r"^https://sentry\.io/api/0/organizations/acme/issues/\?.*$")
SENTRY_PROJECT = "https://sentry.io/api/0/projects/acme/web/"


@pytest.fixture
def vendor() -> Iterator[VendorMock]:
    with VendorMock() as mocked:
        yield mocked


@pytest.fixture
def railway(monkeypatch: pytest.MonkeyPatch, http_session: aiohttp.ClientSession) -> RailwayClient:
    monkeypatch.setenv("RAILWAY_TOKEN", RAILWAY_TOKEN)
    entry = RailwayEntry.model_validate(
        {"token_env": "RAILWAY_TOKEN", "project_id": "p-1", "environment_id": "e-1", "service_id": "s-1"}
    )
    return RailwayClient(entry, http_session, timeout=5.0)


@pytest.fixture
def sentry(monkeypatch: pytest.MonkeyPatch, http_session: aiohttp.ClientSession) -> SentryClient:
    monkeypatch.setenv("SENTRY_TOKEN", SENTRY_TOKEN)
    entry = SentryEntry.model_validate({"token_env": "SENTRY_TOKEN", "organization": "acme", "project": "web"})
    return SentryClient(entry, http_session, timeout=5.0)


def posted(vendor: VendorMock) -> list[Any]:
    return vendor.requests[("POST", URL(RAILWAY))]


# Railway


async def test_deployments_come_newest_first_with_their_commits(vendor: VendorMock, railway: RailwayClient) -> None:
    vendor.post(RAILWAY, payload=deployments_answer())
    deployments = await railway.deployments()
    assert [(d.id, d.status) for d in deployments] == [("d-3", "SUCCESS"), ("d-2", "FAILED"), ("d-1", "SUCCESS")]
    latest = deployments[0]
    assert (latest.short_hash, latest.commit_message, latest.author, latest.branch) == (
        "abc1234", "fix checkout", "alice", "main"
    )
    (call,) = posted(vendor)
    assert call.kwargs["headers"] == {"Authorization": f"Bearer {RAILWAY_TOKEN}"}
    assert call.kwargs["json"]["variables"]["input"] == {"projectId": "p-1", "environmentId": "e-1", "serviceId": "s-1"}


async def test_a_project_token_goes_in_its_own_header(
    vendor: VendorMock, monkeypatch: pytest.MonkeyPatch, http_session: aiohttp.ClientSession
) -> None:
    monkeypatch.setenv("RAILWAY_PROJECT_TOKEN", "project-token-123456")
    entry = RailwayEntry.model_validate(
        {"project_token_env": "RAILWAY_PROJECT_TOKEN", "project_id": "p", "environment_id": "e", "service_id": "s"}
    )
    vendor.post(RAILWAY, payload=deployments_answer())
    await RailwayClient(entry, http_session, 5.0).deployments()
    (call,) = posted(vendor)
    assert call.kwargs["headers"] == {"Project-Access-Token": "project-token-123456"}


async def test_a_deployment_without_commit_metadata_still_parses(vendor: VendorMock, railway: RailwayClient) -> None:
    vendor.post(RAILWAY, payload={"data": {"deployments": {"edges": [
        {"node": {"id": "d-9", "status": "SUCCESS", "createdAt": "2026-11-26T18:00:00.000Z", "meta": None}}
    ]}}})
    (only,) = await railway.deployments()
    assert (only.id, only.commit_hash, only.finished_at, only.can_rollback) == ("d-9", None, None, False)


VENDOR_FAILURES = [
    pytest.param({"status": 401}, "not authorized", id="401"),
    pytest.param({"status": 429, "headers": {"Retry-After": "30"}}, "rate-limited, retry after 30s", id="429"),
    pytest.param({"status": 503, "body": "upstream down"}, "HTTP 503 Service Unavailable", id="503"),
    pytest.param({"exception": TimeoutError()}, "no answer within 5s", id="timeout"),
    pytest.param({"body": "<html>Bad Gateway</html>"}, "malformed answer (not JSON)", id="garbage"),
    pytest.param(
        {"exception": aiohttp.ClientConnectionError("refused")}, "unreachable (ClientConnectionError)", id="refused"
    ),
]


@pytest.mark.parametrize(("answer", "line"), [
    *VENDOR_FAILURES,
    pytest.param({"payload": {"errors": [{"message": "Not Authorized"}], "data": None}}, "not authorized",
                 id="graphql-not-authorized"),
    pytest.param({"payload": {"errors": [{"message": "Problem processing request"}], "data": None}},
                 "GraphQL error: Problem processing request", id="graphql-error"),
    pytest.param({"payload": {"data": {"deployments": {"edges": [{"node": {"status": "SUCCESS"}}]}}}},
                 "malformed answer (deployments)", id="wrong-shape"),
])
async def test_railway_failures_are_one_short_line(
    vendor: VendorMock, railway: RailwayClient, answer: dict[str, Any], line: str
) -> None:
    vendor.post(RAILWAY, **answer)
    with pytest.raises(VendorError) as raised:
        await railway.deployments()
    assert str(raised.value) == line


async def test_a_vendor_error_that_echoes_the_token_is_scrubbed(vendor: VendorMock, railway: RailwayClient) -> None:
    vendor.post(RAILWAY, payload={"errors": [{"message": f"token {RAILWAY_TOKEN} is invalid"}], "data": None})
    with pytest.raises(VendorError) as raised:
        await railway.deployments()
    assert str(raised.value) == "GraphQL error: token *** is invalid"


async def test_error_logs_are_filtered_cut_to_five_and_scrubbed(vendor: VendorMock, railway: RailwayClient) -> None:
    answer = logs_answer(extra_secret=RAILWAY_TOKEN)
    answer["data"]["deploymentLogs"] += [{"timestamp": None, "message": f"ERROR {n} " + "x" * 500} for n in range(4)]
    vendor.post(RAILWAY, payload=answer)
    lines = await railway.error_logs("d-3", START)
    assert len(lines) == 5
    assert lines[0].message == "ERROR pool exhausted <!channel>"
    assert lines[1].message == "ERROR auth failed with token *** at db.py:42"
    assert all(len(line.message) <= 200 for line in lines) and lines[4].message.endswith("…")
    variables = posted(vendor)[0].kwargs["json"]["variables"]
    assert variables == {"deploymentId": "d-3", "limit": 5, "filter": "@level:error",
                         "startDate": "2026-11-26T19:00:00Z"}


@pytest.mark.parametrize(("answer", "said"), [
    ({"page": {"name": "Railway", "status": "HASISSUES"},
      "activeIncidents": [{"name": "Build delays", "status": "INVESTIGATING"}], "activeMaintenances": []},
     "has issues: Build delays"),
    ({"page": {"name": "Railway", "status": "UP"}, "activeIncidents": [], "activeMaintenances": []}, None),
    ({"something": "else"}, None),
    (["not", "an", "object"], None),
])
async def test_the_platform_status_speaks_only_of_trouble(
    vendor: VendorMock, railway: RailwayClient, answer: Any, said: str | None
) -> None:
    vendor.get(RAILWAY_STATUS, payload=answer)
    assert await railway.platform_trouble() == said


async def test_rollback_sends_the_boolean_mutation_and_reads_its_answer(
    vendor: VendorMock, railway: RailwayClient
) -> None:
    vendor.post(RAILWAY, payload={"data": {"deploymentRollback": True}})
    assert await railway.rollback("d-1") == "accepted (deploymentRollback = true)"
    body = posted(vendor)[0].kwargs["json"]
    assert body["variables"] == {"id": "d-1"}
    assert re.search(r"deploymentRollback\(id: \$id\) \}", body["query"]), "a Boolean field takes no selection"


async def test_a_refused_restart_and_a_redeploy_answer(vendor: VendorMock, railway: RailwayClient) -> None:
    vendor.post(RAILWAY, payload={"data": {"deploymentRestart": False}})
    with pytest.raises(VendorError, match=r"^refused \(deploymentRestart = false\)$"):
        await railway.restart("d-3")
    vendor.post(RAILWAY, payload={"data": {"deploymentRedeploy": {"id": "d-4", "status": "BUILDING"}}})
    assert await railway.redeploy("d-3") == "new deployment d-4 (BUILDING)"


# Sentry


async def test_top_issues_come_from_the_organization_endpoint(vendor: VendorMock, sentry: SentryClient) -> None:
    vendor.get(SENTRY_PROJECT, payload={"id": "42", "slug": "web"})
    vendor.get(SENTRY_ISSUES, payload=sentry_issues())
    issues = await sentry.top_issues()
    assert [(i.short_id, i.count, i.users) for i in issues] == [("WEB-1A2", 150, 12), ("WEB-9", 7, 2)]
    assert issues[0].culprit == "checkout.views.pay" and issues[0].permalink == "https://acme.sentry.io/issues/1/"
    ((_, url), calls) = next((key, calls) for key, calls in vendor.requests.items() if "issues" in str(key[1]))
    assert dict(url.query) == {"project": "42", "statsPeriod": "1h", "query": "is:unresolved", "sort": "freq",
                               "limit": "3"}
    assert calls[0].kwargs["headers"] == {"Authorization": f"Bearer {SENTRY_TOKEN}"}


async def test_the_project_slug_is_looked_up_once(vendor: VendorMock, sentry: SentryClient) -> None:
    vendor.get(SENTRY_PROJECT, payload={"id": "42", "slug": "web"})
    vendor.get(SENTRY_ISSUES, payload=[], repeat=True)
    await sentry.top_issues()
    await sentry.top_issues()
    assert len(vendor.sent(SENTRY_PROJECT)) == 1


async def test_a_numeric_project_id_needs_no_lookup(
    vendor: VendorMock, monkeypatch: pytest.MonkeyPatch, http_session: aiohttp.ClientSession
) -> None:
    monkeypatch.setenv("SENTRY_TOKEN", SENTRY_TOKEN)
    entry = SentryEntry.model_validate({"token_env": "SENTRY_TOKEN", "organization": "acme", "project_id": 42})
    vendor.get(SENTRY_ISSUES, payload=sentry_issues()[:1])
    (issue,) = await SentryClient(entry, http_session, 5.0).top_issues()
    assert issue.short_id == "WEB-1A2"


@pytest.mark.parametrize(("answer", "line"), [
    *VENDOR_FAILURES,
    pytest.param({"payload": {"detail": "Invalid query"}}, "malformed answer (issues)", id="object-not-list"),
])
async def test_sentry_failures_are_one_short_line(
    vendor: VendorMock, sentry: SentryClient, answer: dict[str, Any], line: str
) -> None:
    vendor.get(SENTRY_PROJECT, payload={"id": "42"})
    vendor.get(SENTRY_ISSUES, **answer)
    with pytest.raises(VendorError) as raised:
        await sentry.top_issues()
    assert str(raised.value) == line
