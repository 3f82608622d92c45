"""Alertmanager against the real binary (Debian's prometheus-alertmanager): the alert as
Alertmanager lists it, its resolution, a severity rise, refresh() and rejected alerts."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerting.alertmanager import AlertmanagerSink, description
from alerting.base import DeliveryError, Notification, NotificationKind, SinkContext
from monitor.model import Incident, Severity
from tests.alerting_helpers import incident
from tests.fakes import FakeClock
from tests.net import free_port
from tests.sinks.conftest import Alertmanager

LABELS = ("alertname", "severity", "check", "code", "monitor")


def now_to_the_second() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def live_incident(**changes: Any) -> Incident:
    """An incident opened ten minutes ago by the real clock, which Alertmanager judges by."""
    return incident(opened_at=now_to_the_second() - timedelta(minutes=10), **changes)


def message(kind: NotificationKind, subject: Incident, monitor: str, **changes: Any) -> Notification:
    if kind is NotificationKind.RESOLUTION:
        resolved_at = changes.pop("resolved_at", now_to_the_second())
        subject = subject.model_copy(
            update={"state": "resolved", "resolved_at": resolved_at, "resolution": "check passing again"}
        )
    return Notification(
        id=f"{subject.id}:{kind.value}",
        kind=kind,
        incident=subject,
        monitor=monitor,
        created_at=now_to_the_second(),
        **changes,
    )


def alertmanager_sink(alertmanager: Alertmanager, context: SinkContext, **keys: Any) -> AlertmanagerSink:
    raw = {"type": "alertmanager", "url": alertmanager.url, "generator_url": "http://127.0.0.1:8573/"}
    return AlertmanagerSink("alertmanager", AlertmanagerSink.Config.model_validate(raw | keys), context)


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


async def test_the_firing_alert_is_listed_then_resolved(alertmanager: Alertmanager, sink_context, http_session) -> None:
    sink = alertmanager_sink(alertmanager, sink_context)
    subject = live_incident()
    await sink.send(message(NotificationKind.INITIAL, subject, "am-resolve"))

    (alert,) = await alertmanager.wait_for(http_session, "am-resolve", lambda alerts: len(alerts) == 1)
    assert {name: alert["labels"][name] for name in LABELS} == {
        "alertname": "HealthMonitorIncident",
        "severity": "P1",
        "check": "api",
        "code": "down",
        "monitor": "am-resolve",
    }
    assert alert["annotations"]["summary"] == subject.summary
    assert alert["annotations"]["runbook"] == "Complete Outage"
    assert "Impact: customers cannot load the dashboard" in alert["annotations"]["description"]
    assert when(alert["startsAt"]) == subject.opened_at
    assert when(alert["endsAt"]) > datetime.now(UTC)
    assert alert["generatorURL"] == "http://127.0.0.1:8573/"

    await sink.send(message(NotificationKind.RESOLUTION, subject, "am-resolve"))
    assert await alertmanager.wait_for(http_session, "am-resolve", lambda alerts: not alerts) == []


async def test_a_severity_rise_leaves_one_alert_under_the_new_severity(
    alertmanager: Alertmanager, sink_context, http_session
) -> None:
    sink = alertmanager_sink(alertmanager, sink_context)
    subject = live_incident(severity=Severity.P3)
    await sink.send(message(NotificationKind.INITIAL, subject, "am-raise"))
    raised = subject.model_copy(update={"severity": Severity.P1})
    await sink.send(message(NotificationKind.SEVERITY_RAISED, raised, "am-raise", previous_severity=Severity.P3))
    alerts = await alertmanager.wait_for(
        http_session, "am-raise", lambda alerts: [a["labels"]["severity"] for a in alerts] == ["P1"]
    )
    assert [alert["labels"]["severity"] for alert in alerts] == ["P1"]


async def test_a_grouped_message_fires_one_alert_per_admitted_incident(
    alertmanager: Alertmanager, sink_context, http_session
) -> None:
    sink = alertmanager_sink(alertmanager, sink_context, min_severity="P2")
    group = (live_incident(id=3, check="db"), live_incident(id=4, check="ui", severity=Severity.P4))
    grouped = message(NotificationKind.GROUPED, group[0], "am-group", group=group)
    await sink.send(grouped)
    alerts = await alertmanager.wait_for(http_session, "am-group", lambda alerts: len(alerts) >= 1)
    assert [alert["labels"]["check"] for alert in alerts] == ["db"]


def test_the_description_says_who_acknowledged() -> None:
    acknowledged = incident(acknowledged_by="alice")
    assert "Acknowledged by: alice" in description(acknowledged, "prod").splitlines()


async def test_refresh_restores_lost_alerts_and_keeps_them_from_expiring(
    alertmanager: Alertmanager, http_session
) -> None:
    clock = FakeClock(start=now_to_the_second())
    sink = alertmanager_sink(alertmanager, SinkContext(http_session, clock), min_severity="P2", resend_interval="1m")
    api = live_incident(id=1)
    db = live_incident(id=2, check="db", code="long_queries", severity=Severity.P2)
    too_minor = live_incident(id=3, check="ui", code="slow", severity=Severity.P4)

    await sink.refresh([api, db, too_minor], monitor="am-refresh")
    alerts = await alertmanager.wait_for(http_session, "am-refresh", lambda alerts: len(alerts) == 2)
    assert sorted(alert["labels"]["check"] for alert in alerts) == ["api", "db"]
    assert {when(alert["endsAt"]) for alert in alerts} == {clock.now() + timedelta(minutes=4)}

    await clock.advance(60)
    await sink.refresh([api, db], monitor="am-refresh")
    alerts = await alertmanager.alerts(http_session, "am-refresh")
    assert {when(alert["endsAt"]) for alert in alerts} == {clock.now() + timedelta(minutes=4)}


async def test_an_alert_alertmanager_rejects_is_not_retried(alertmanager: Alertmanager, sink_context) -> None:
    subject = live_incident()
    backwards = message(
        NotificationKind.RESOLUTION, subject, "am-reject", resolved_at=subject.opened_at - timedelta(minutes=1)
    )
    with pytest.raises(DeliveryError) as failure:
        await alertmanager_sink(alertmanager, sink_context).send(backwards)
    assert not failure.value.retryable
    assert "400" in str(failure.value)


async def test_an_unreachable_alertmanager_is_worth_a_retry(sink_context) -> None:
    raw = {"type": "alertmanager", "url": f"http://127.0.0.1:{free_port()}"}
    sink = AlertmanagerSink("alertmanager", AlertmanagerSink.Config.model_validate(raw), sink_context)
    with pytest.raises(DeliveryError) as failure:
        await sink.send(message(NotificationKind.INITIAL, live_incident(), "am-down"))
    assert failure.value.retryable
