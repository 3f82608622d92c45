"""`type = "pagerduty"`: PagerDuty Events API v2. An incident's initial alert and each
severity rise `trigger` one PagerDuty alert, its resolution `resolve`s it and
`acknowledge()` acknowledges it, all under one dedup_key derived from the incident."""

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from alerting.base import (
    Incident,
    Notification,
    NotificationKind,
    SecretEnv,
    Severity,
    Sink,
    SinkConfig,
    incident_lines,
    runbook_actions,
)
from alerting.http import Endpoint, post_json

EVENTS_V2_URL = "https://events.pagerduty.com/v2/enqueue"
MAX_SUMMARY_CHARS = 1024
MAX_DEDUP_KEY_CHARS = 255

PagerDutySeverity = Literal["critical", "error", "warning", "info"]
EventAction = Literal["trigger", "acknowledge", "resolve"]

SEVERITIES: dict[Severity, PagerDutySeverity] = {
    Severity.P1: "critical",
    Severity.P2: "error",
    Severity.P3: "warning",
    Severity.P4: "info",
}


class PagerDutySinkConfig(SinkConfig):
    routing_key_env: SecretEnv = Field(description="Environment variable holding the integration (routing) key.")
    url: str = Field(default=EVENTS_V2_URL, pattern=r"^https?://", description="Events API v2 enqueue URL.")


class CustomDetails(BaseModel):
    incident: str
    impact: str
    evidence: list[str]
    runbook: str | None
    runbook_actions: list[str]
    diagnosis: list[str] | None = None
    """The diagnosis context lines ([context]), as under the page's Diagnosis heading; left out when none."""


class EventPayload(BaseModel):
    summary: str
    source: str
    severity: PagerDutySeverity
    timestamp: datetime
    component: str
    class_: str = Field(serialization_alias="class")
    custom_details: CustomDetails


class Event(BaseModel):
    routing_key: str
    event_action: EventAction
    dedup_key: str
    payload: EventPayload | None = None
    client: str | None = None


def dedup_key(incident: Incident, monitor: str) -> str:
    """Stable for the incident's whole life, and distinct from any other incident's."""
    key = f"health-monitor/{monitor}/{incident.id}"
    if len(key) <= MAX_DEDUP_KEY_CHARS:
        return key
    return "health-monitor/" + hashlib.sha256(key.encode()).hexdigest()


def summary(incident: Incident, monitor: str) -> str:
    text = f"[{incident.severity.value}] {incident.check} on {monitor}: {incident.summary}"
    return text if len(text) <= MAX_SUMMARY_CHARS else text[: MAX_SUMMARY_CHARS - 1] + "…"


def event_payload(incident: Incident, monitor: str) -> EventPayload:
    return EventPayload(
        summary=summary(incident, monitor),
        source=monitor,
        severity=SEVERITIES[incident.severity],
        timestamp=incident.opened_at,
        component=incident.check,
        class_=incident.code,
        custom_details=CustomDetails(
            incident=f"#{incident.id} {incident.key}",
            impact=incident.impact,
            evidence=incident.evidence,
            runbook=incident.runbook,
            runbook_actions=runbook_actions(incident.runbook),
            diagnosis=incident_lines(incident) or None,
        ),
    )


def build_event(action: EventAction, incident: Incident, monitor: str, routing_key: str) -> Event:
    return Event(
        routing_key=routing_key,
        event_action=action,
        dedup_key=dedup_key(incident, monitor),
        payload=event_payload(incident, monitor) if action == "trigger" else None,
        client="health-monitor" if action == "trigger" else None,
    )


_ACTIONS: dict[NotificationKind, EventAction] = {
    NotificationKind.RESOLUTION: "resolve",
    NotificationKind.ACKNOWLEDGED: "acknowledge",
}


def action_for(kind: NotificationKind) -> EventAction:
    """Resolution resolves, acknowledgement acknowledges; every other message (initial,
    severity rise, escalation, status update, breach, grouped) triggers: on an open
    PagerDuty alert that adds an entry to its log, and it opens one where none is."""
    return _ACTIONS.get(kind, "trigger")


class PagerDutySink(Sink[PagerDutySinkConfig]):
    type_name = "pagerduty"
    Config = PagerDutySinkConfig

    async def send(self, notification: Notification) -> None:
        """One event per incident: a grouped message triggers each incident it holds that
        this sink admits, each under its own dedup_key."""
        action = action_for(notification.kind)
        grouped = [incident for incident in notification.group if self._admits(incident)]
        for incident in grouped if notification.group else [notification.incident]:
            await self._post(action, incident, notification.monitor)

    async def acknowledge(self, incident: Incident, *, monitor: str) -> None:
        """Acknowledge the incident's PagerDuty alert outside the outbox (an ACKNOWLEDGED
        notification through send() does the same); raises DeliveryError like send()."""
        if self._admits(incident):
            await self._post("acknowledge", incident, monitor)

    def _admits(self, incident: Incident) -> bool:
        return incident.severity.at_least(self.config.min_severity)

    async def _post(self, action: EventAction, incident: Incident, monitor: str) -> None:
        routing_key = self.config.routing_key_env.value()
        event = build_event(action, incident, monitor, routing_key)
        body = event.model_dump_json(by_alias=True, exclude_none=True).encode()
        endpoint = Endpoint("PagerDuty", self.config.url)
        await post_json(self.context.http, endpoint, body, timeout=self.config.timeout, now=self.context.clock.now())
