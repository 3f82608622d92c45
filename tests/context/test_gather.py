"""The gatherer on a fake clock: both providers in parallel, what they found rendered as the
page's Diagnosis lines, and a slow vendor cut off at `[context] timeout` with what it had."""

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from alerting.base import NotificationKind
from alerting.messages import notification_lines
from alerting.pagerduty import event_payload
from monitor.context.config import ContextSection
from monitor.context.gather import ContextGatherer
from monitor.context.model import IncidentContext
from monitor.context.render import incident_lines, timeline_text
from monitor.model import Incident, Severity, TimelineEvent
from tests.alerting_helpers import incident as make_incident
from tests.alerting_helpers import notification
from tests.context.helpers import RAILWAY_TOKEN, SENTRY_TOKEN, deployments_answer, logs_answer, sentry_issues
from tests.fakes import START, FakeClock, settle
from tests.integrations.helpers import VendorMock

RAILWAY = "https://backboard.railway.com/graphql/v2"
RAILWAY_STATUS = "https://api.railwaystatus.com/status"
SENTRY_ISSUES = re.compile(r"^https://sentry\.io/api/0/organizations/acme/issues/\?.*$")


@pytest.fixture
def vendor() -> Iterator[VendorMock]:
    with VendorMock() as mocked:
        yield mocked


@pytest.fixture
def section(monkeypatch: pytest.MonkeyPatch) -> ContextSection:
    monkeypatch.setenv("RAILWAY_TOKEN", RAILWAY_TOKEN)
    monkeypatch.setenv("SENTRY_TOKEN", SENTRY_TOKEN)
    return ContextSection.model_validate({
        "railway": {"token_env": "RAILWAY_TOKEN", "project_id": "p", "environment_id": "e", "service_id": "s",
                    "checks": ["api"]},
        "sentry": {"token_env": "SENTRY_TOKEN", "organization": "acme", "project_id": 42},
    })


def answer_railway(vendor: VendorMock, logs: Any = None) -> None:
    """Deployments, then the error log; the status page says all is well."""
    vendor.post(RAILWAY, payload=deployments_answer())
    if logs is not None:
        vendor.post(RAILWAY, **logs)
    else:
        vendor.post(RAILWAY, payload=logs_answer())
    vendor.get(RAILWAY_STATUS, payload={"page": {"status": "UP"}, "activeIncidents": []})


def never_answer() -> dict[str, Any]:
    async def hang(*_: Any, **__: Any) -> None:
        await asyncio.Event().wait()

    return {"callback": hang}


async def gather(section: ContextSection, http: aiohttp.ClientSession, clock: FakeClock,
                 incident: Incident) -> IncidentContext | None:
    return await ContextGatherer(section, http, clock).gather(incident)


async def test_the_page_names_the_last_deploy_the_broken_one_the_log_and_sentry(
    vendor: VendorMock, section: ContextSection, http_session: aiohttp.ClientSession, fake_clock: FakeClock
) -> None:
    answer_railway(vendor)
    vendor.get(SENTRY_ISSUES, payload=sentry_issues())
    incident = make_incident(Severity.P1)
    context = await gather(section, http_session, fake_clock, incident)
    assert context is not None
    lines = incident_lines(incident.model_copy(update={"context": context}))
    assert lines == [
        'Last deploy: SUCCESS 4m before detection: abc1234 "fix checkout" by alice (main)',
        'Broken deploy: FAILED 20m before detection: bad0000 "try new pool" by bob (main) [d-2]',
        "Error log (2 lines):",
        "  18:58:00Z ERROR pool exhausted <!channel>",
        "  18:59:00Z ERROR auth failed with token at db.py:42",
        "Sentry, unresolved in the last hour:",
        '  WEB-1A2 "OperationalError: too many connections" in checkout.views.pay: 150 events, 12 users, '
        "first seen 3m before detection (NEW since the last deploy)",
        "    https://acme.sentry.io/issues/1/",
        "  WEB-9 \"KeyError: 'sku'\" in cart.add: 7 events, 2 users, first seen 1d before detection",
        "    https://acme.sentry.io/issues/2/",
        "Suspect deploy (4m before detection). Roll back to 0ld1111: health-monitor action 7 rollback --to d-1",
    ]
    assert timeline_text(context) == (
        "diagnosis context gathered: last deploy abc1234 4m before detection; 1 broken deploy(s); "
        "2 error log line(s); 2 Sentry issue(s), 1 new since the deploy"
    )


async def test_a_p3_gets_no_rollback_suggestion_and_an_old_deploy_is_no_suspect(
    vendor: VendorMock, section: ContextSection, http_session: aiohttp.ClientSession, fake_clock: FakeClock
) -> None:
    answer_railway(vendor)
    vendor.get(SENTRY_ISSUES, payload=[])
    p3 = make_incident(Severity.P3)
    context = await gather(section, http_session, fake_clock, p3)
    assert context is not None and context.suspect_deploy
    lines = incident_lines(p3.model_copy(update={"context": context}))
    assert not any("rollback" in line for line in lines)
    assert "Sentry: no unresolved issue in the last hour" in lines

    narrow = section.model_copy(update={"suspect_window": 120.0})
    answer_railway(vendor)
    vendor.get(SENTRY_ISSUES, payload=[])
    p1 = make_incident(Severity.P1)
    context = await gather(narrow, http_session, fake_clock, p1)
    assert context is not None and not context.suspect_deploy
    assert not any("rollback" in line for line in incident_lines(p1.model_copy(update={"context": context})))


async def test_vendor_failures_are_lines_of_the_context_not_a_failed_page(
    vendor: VendorMock, section: ContextSection, http_session: aiohttp.ClientSession, fake_clock: FakeClock
) -> None:
    vendor.post(RAILWAY, payload={"errors": [{"message": "Not Authorized"}], "data": None})
    vendor.get(RAILWAY_STATUS, body="<html>garbage</html>")
    vendor.get(SENTRY_ISSUES, status=429, headers={"Retry-After": "120"})
    incident = make_incident(Severity.P1)
    context = await gather(section, http_session, fake_clock, incident)
    assert context is not None
    assert incident_lines(incident.model_copy(update={"context": context})) == [
        "Railway: not authorized",
        "Railway: status page: malformed answer (not JSON)",
        "Sentry: rate-limited, retry after 2m",
    ]


async def test_a_slow_vendor_is_cut_off_at_the_timeout_and_the_rest_is_kept(
    vendor: VendorMock, section: ContextSection, http_session: aiohttp.ClientSession, fake_clock: FakeClock
) -> None:
    answer_railway(vendor, logs=never_answer())
    vendor.get(SENTRY_ISSUES, **never_answer())
    incident = make_incident(Severity.P1)
    gathering = asyncio.create_task(gather(section, http_session, fake_clock, incident))
    await fake_clock.advance(4.9)
    assert not gathering.done(), "the gatherer waits for the vendors up to the timeout"
    await fake_clock.advance(0.1)
    await settle()
    assert gathering.done(), "and not a moment longer"
    context = gathering.result()
    assert context is not None and context.railway is not None and context.sentry is not None
    assert context.railway.last_deploy is not None and context.railway.last_deploy.id == "d-3"
    assert context.railway.problems == ["deployment logs: no answer within 5s"]
    assert context.sentry.problems == ["no answer within 5s"]


async def test_checks_no_entry_covers_get_no_context(
    section: ContextSection, http_session: aiohttp.ClientSession, fake_clock: FakeClock
) -> None:
    only_railway = section.model_copy(update={"sentry": {}})
    assert await gather(only_railway, http_session, fake_clock, make_incident(check="db")) is None


def test_pagerduty_carries_the_diagnosis_in_its_custom_details() -> None:
    context = IncidentContext.model_validate({
        "detected_at": "2026-11-26T19:00:00Z",
        "sentry": {"issues": [{"short_id": "WEB-1", "title": "boom", "count": 3, "users": 1}]},
    })
    details = event_payload(make_incident(context=context), "shop").custom_details
    assert details.diagnosis == ["Sentry, unresolved in the last hour:", '  WEB-1 "boom": 3 events, 1 users']
    assert event_payload(make_incident(), "shop").custom_details.diagnosis is None


def test_only_the_initial_alert_and_the_first_status_update_carry_the_context() -> None:
    context = IncidentContext.model_validate({
        "detected_at": "2026-11-26T19:00:00Z",
        "sentry": {"issues": [{"short_id": "WEB-1", "title": "boom", "count": 3, "users": 1}]},
    })
    update = TimelineEvent(at=START, kind="status_update", text="status update sent (Status: Investigating)")
    first = {"context": context, "timeline": [update]}
    second = {"context": context, "timeline": [update, update]}
    assert notification_lines(notification(NotificationKind.INITIAL, context=context))
    assert notification_lines(notification(NotificationKind.STATUS_UPDATE, **first))
    assert not notification_lines(notification(NotificationKind.STATUS_UPDATE, **second))
    assert not notification_lines(notification(NotificationKind.ESCALATION, context=context))
