"""From incident events to notifications, and who hears them.

Without an escalation chain every sink hears every notification its `min_severity` admits.
With one, a sink named in a level hears of an incident only from the moment that level is
reached; sinks named in no level hear everything. An escalation notice goes to the level
just reached, a response-time breach to the current level (plus the unlevelled sinks)."""

from collections.abc import Callable

from alerting.base import Notification, NotificationKind
from alerting.dispatcher import Dispatcher
from monitor.clock import Clock
from monitor.config import Config
from monitor.incidents import IncidentEvent, IncidentEventKind, reached_levels
from monitor.metrics import MonitorMetrics

_KIND = {
    IncidentEventKind.OPENED: NotificationKind.INITIAL,
    IncidentEventKind.SEVERITY_RAISED: NotificationKind.SEVERITY_RAISED,
    IncidentEventKind.ESCALATED: NotificationKind.ESCALATION,
    IncidentEventKind.ACKNOWLEDGED: NotificationKind.ACKNOWLEDGED,
    IncidentEventKind.RESPONSE_BREACHED: NotificationKind.RESPONSE_BREACHED,
    IncidentEventKind.STATUS_UPDATE: NotificationKind.STATUS_UPDATE,
    IncidentEventKind.RESOLVED: NotificationKind.RESOLUTION,
}


class Notifier:
    def __init__(
        self,
        config: Config,
        dispatcher: Dispatcher,
        metrics: MonitorMetrics,
        clock: Clock,
        on_resolved: Callable[[IncidentEvent], None] = lambda _: None,
    ) -> None:
        self.config = config
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._clock = clock
        self._on_resolved = on_resolved

    def publish(self, events: list[IncidentEvent]) -> None:
        for event in events:
            self._count(event)
            if event.kind is IncidentEventKind.RESOLVED:
                self._on_resolved(event)
            self._dispatcher.submit(self.notification(event), self.audience(event))

    def notification(self, event: IncidentEvent) -> Notification:
        incident = event.incident
        kind = _KIND[event.kind]
        level = event.level or next(
            (lvl for lvl in self.config.escalation if lvl.level == incident.escalation_level), None
        )
        return Notification(
            id=_notification_id(event, kind),
            kind=kind,
            incident=incident,
            monitor=self.config.monitor.name,
            created_at=self._clock.now(),
            previous_severity=event.previous_severity,
            next_update_seconds=self.config.severity_policy(incident.severity).update_every,
            escalation_level=level.level if level else None,
            escalation_role=level.role if level else None,
            status=event.status,
            progress=event.progress,
        )

    def audience(self, event: IncidentEvent) -> set[str] | None:
        """The sinks that hear this event; None for every sink."""
        levels = self.config.escalation
        if not levels or not event.incident.escalates:
            return None
        unlevelled = set(self.config.sinks) - {sink for level in levels for sink in level.notify}
        if event.kind is IncidentEventKind.ESCALATED and event.level is not None:
            return unlevelled | set(event.level.notify)
        reached = list(reached_levels(self.config, event.incident))
        if event.kind is IncidentEventKind.RESPONSE_BREACHED:
            return unlevelled | set(reached[-1].notify if reached else ())
        return unlevelled | {sink for level in reached for sink in level.notify}

    def _count(self, event: IncidentEvent) -> None:
        severity = event.incident.severity.value
        if event.kind is IncidentEventKind.OPENED:
            self._metrics.incidents_opened.labels(severity=severity).inc()
        elif event.kind is IncidentEventKind.RESPONSE_BREACHED:
            self._metrics.response_breaches.labels(severity=severity).inc()


def _notification_id(event: IncidentEvent, kind: NotificationKind) -> str:
    """Stable per event, so that a repeat after a crash is recognised as the same message."""
    incident = event.incident
    base = f"{incident.id}:{kind.value}"
    if kind is NotificationKind.SEVERITY_RAISED:
        return f"{base}:{incident.severity.value}"
    if kind is NotificationKind.ESCALATION and event.level is not None:
        return f"{base}:{event.level.level}"
    if kind is NotificationKind.STATUS_UPDATE:
        return f"{base}:{sum(1 for entry in incident.timeline if entry.kind == 'status_update')}"
    return base
