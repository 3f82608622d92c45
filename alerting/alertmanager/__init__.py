"""`type = "alertmanager"`: each incident mirrored as one Prometheus Alertmanager alert
(POST /api/v2/alerts), so that Alertmanager's routing, grouping, silences and inhibition
apply to it.

Alertmanager keeps alerts in memory only and lets a firing alert expire at its `endsAt`.
Like Prometheus, the sink posts firing alerts with `endsAt` four `resend_interval`s ahead
and expects the core to call `refresh()` with the open incidents every `resend_interval`;
a resolution posts `endsAt` = the incident's resolution time. An alert's identity is its
label set, which holds the severity: when the severity rises, the alert under the old
severity is resolved in the same request."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, Field, TypeAdapter
from yarl import URL

from alerting.base import (
    Duration,
    Incident,
    Notification,
    NotificationKind,
    Severity,
    Sink,
    SinkConfig,
    runbook_actions,
)
from alerting.http import Endpoint, post_json

ALERTS_PATH = "/api/v2/alerts"
EXPIRY_IN_INTERVALS = 4


class AlertmanagerSinkConfig(SinkConfig):
    url: str = Field(pattern=r"^https?://", description="Alertmanager's base URL, e.g. http://127.0.0.1:9093.")
    alertname: str = Field(default="HealthMonitorIncident", min_length=1, description="The alertname label.")
    generator_url: str | None = Field(default=None, description="Link sent as each alert's generatorURL.")
    resend_interval: Duration = Field(default=60.0, gt=0, description="How often firing alerts are re-posted.")

    @property
    def alerts_url(self) -> str:
        base = URL(self.url)
        return str(base.with_path(base.path.rstrip("/") + ALERTS_PATH))

    @property
    def shown_url(self) -> str:
        """The URL as errors show it: without credentials or query."""
        return str(URL(self.url).with_user(None).with_query(None))


class AlertLabels(BaseModel):
    alertname: str
    severity: Severity
    check: str
    code: str
    monitor: str


class AlertAnnotations(BaseModel):
    summary: str
    description: str
    runbook: str | None = None


class PostableAlert(BaseModel):
    labels: AlertLabels
    annotations: AlertAnnotations
    starts_at: datetime = Field(serialization_alias="startsAt")
    ends_at: datetime = Field(serialization_alias="endsAt")
    generator_url: str | None = Field(default=None, serialization_alias="generatorURL")


_ALERT_LIST = TypeAdapter(list[PostableAlert])


def description(incident: Incident, monitor: str) -> str:
    """The incident as it stands, the same whichever message or refresh carries it."""
    lines = [
        f"Service: {incident.check}",
        f"Impact: {incident.impact}",
        f"Finding: {incident.summary}",
        f"Incident: #{incident.id} {incident.key} on {monitor}",
    ]
    if incident.evidence:
        lines += ["Evidence:", *(f"  {line}" for line in incident.evidence)]
    if incident.runbook:
        actions = runbook_actions(incident.runbook)
        lines += [f"Runbook: {incident.runbook}", *(f"  {n}. {action}" for n, action in enumerate(actions, 1))]
    if incident.acknowledged_by:
        lines.append(f"Acknowledged by: {incident.acknowledged_by}")
    if incident.resolution:
        lines.append(f"Resolution: {incident.resolution}")
    return "\n".join(lines)


def build_alert(
    incident: Incident,
    monitor: str,
    config: AlertmanagerSinkConfig,
    ends_at: datetime,
    severity: Severity | None = None,
) -> PostableAlert:
    return PostableAlert(
        labels=AlertLabels(
            alertname=config.alertname,
            severity=severity or incident.severity,
            check=incident.check,
            code=incident.code,
            monitor=monitor,
        ),
        annotations=AlertAnnotations(
            summary=incident.summary, description=description(incident, monitor), runbook=incident.runbook
        ),
        starts_at=incident.opened_at,
        ends_at=ends_at,
        generator_url=config.generator_url,
    )


def firing_until(now: datetime, config: AlertmanagerSinkConfig) -> datetime:
    return now + timedelta(seconds=EXPIRY_IN_INTERVALS * config.resend_interval)


def alerts_for(notification: Notification, config: AlertmanagerSinkConfig, now: datetime) -> list[PostableAlert]:
    """Resolution ends the alert (a grouped resolution, each); any other message (re-)fires it,
    and a grouped message fires one alert per incident it holds that this sink admits."""
    incident, monitor = notification.incident, notification.monitor
    if notification.kind is NotificationKind.RESOLUTION:
        return [
            build_alert(item, monitor, config, ends_at=item.resolved_at or now)
            for item in notification.group or (incident,)
        ]
    if notification.group:
        admitted = [item for item in notification.group if item.severity.at_least(config.min_severity)]
        return [build_alert(item, monitor, config, ends_at=firing_until(now, config)) for item in admitted]
    alerts = [build_alert(incident, monitor, config, ends_at=firing_until(now, config))]
    previous = notification.previous_severity
    if notification.kind is NotificationKind.SEVERITY_RAISED and previous and previous != incident.severity:
        alerts.append(build_alert(incident, monitor, config, ends_at=now, severity=previous))
    return alerts


class AlertmanagerSink(Sink[AlertmanagerSinkConfig]):
    type_name = "alertmanager"
    Config = AlertmanagerSinkConfig

    async def send(self, notification: Notification) -> None:
        await self._post(alerts_for(notification, self.config, self.context.clock.now()))

    @property
    def refresh_interval(self) -> float:
        return self.config.resend_interval

    async def refresh(self, open_incidents: Sequence[Incident], *, monitor: str) -> None:
        """Re-post the firing alert of every open incident this sink admits, so that
        Alertmanager neither expires it nor forgets it across its own restart. Call every
        `config.resend_interval`; raises DeliveryError like send() (the next call retries)."""
        now = self.context.clock.now()
        alerts = [
            build_alert(incident, monitor, self.config, ends_at=firing_until(now, self.config))
            for incident in open_incidents
            if incident.is_open and incident.severity.at_least(self.config.min_severity)
        ]
        if alerts:
            await self._post(alerts)

    async def _post(self, alerts: list[PostableAlert]) -> None:
        body = _ALERT_LIST.dump_json(alerts, by_alias=True, exclude_none=True)
        endpoint = Endpoint(f"Alertmanager {self.config.shown_url}", self.config.alerts_url)
        await post_json(self.context.http, endpoint, body, timeout=self.config.timeout, now=self.context.clock.now())
