"""The plugin API for sinks, after Gatus's alerting providers: a sink is built from its
validated config and `send()` delivers one notification or raises. Retries, routing and
rate limits live in the core, not in each sink. A sink imports what it needs from the
engine from here (re-exported from `monitor.plugin`)."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from monitor.plugin import (
    Clock,
    Duration,
    Incident,
    SecretEnv,
    Severity,
    TimelineEvent,
    format_duration,
    register_header,
    register_secret,
    scrub,
)

if TYPE_CHECKING:
    from alerting.slack.threads import ThreadStore

__all__ = [
    "Clock", "DeliveryError", "Duration", "Incident", "Notification", "NotificationKind", "SecretEnv", "Severity",
    "Sink", "SinkConfig", "SinkContext", "TimelineEvent", "format_duration", "register_header", "register_secret",
    "scrub",
]


class NotificationKind(StrEnum):
    INITIAL = "initial"
    SEVERITY_RAISED = "severity_raised"
    ESCALATION = "escalation"
    ACKNOWLEDGED = "acknowledged"
    RESPONSE_BREACHED = "response_breached"
    STATUS_UPDATE = "status_update"
    RESOLUTION = "resolution"
    GROUPED = "grouped"
    """Several initial alerts in one message, sent instead of each during an alert storm."""


class Notification(BaseModel):
    """One message about one incident, with an id stable across retries and restarts
    (sent as an idempotency or dedup key where the sink supports one)."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: NotificationKind
    incident: Incident
    monitor: str
    created_at: datetime
    previous_severity: Severity | None = None
    next_update_seconds: float = 0.0
    escalation_level: int | None = None
    escalation_role: str | None = None
    status: str | None = None
    progress: tuple[str, ...] = ()
    group: tuple[Incident, ...] = ()


class SinkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    min_severity: Severity = Field(default=Severity.P4, description="Least urgent severity this sink receives.")
    send_resolved: bool = Field(default=True, description="Also send resolution messages.")
    timeout: Duration = Field(default=10.0, gt=0, description="Time allowed for one delivery attempt.")
    max_age: Duration = Field(default=3600.0, gt=0, description="Retry until a notification is this old.")
    max_queued: int = Field(
        default=10_000, ge=1, description="Notifications waiting for this sink beyond which the least severe are shed."
    )

    def wants(self, notification: Notification) -> bool:
        if notification.kind is NotificationKind.RESOLUTION and not self.send_resolved:
            return False
        return notification.incident.severity.at_least(self.min_severity)


@dataclass(frozen=True, slots=True)
class SinkContext:
    http: aiohttp.ClientSession
    clock: Clock
    slack_threads: "ThreadStore | None" = None
    """Where Slack app-mode sinks keep each incident's thread, beside the incidents (None: in memory)."""


class DeliveryError(Exception):
    """A delivery failed. `retryable` is False for errors that no retry can fix (a 404 webhook)."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(scrub(message))
        self.retryable = retryable
        self.retry_after = retry_after


SinkConfigT = TypeVar("SinkConfigT", bound=SinkConfig)


class Sink(ABC, Generic[SinkConfigT]):
    type_name: ClassVar[str]
    Config: ClassVar[type[SinkConfig]]

    def __init__(self, name: str, config: SinkConfigT, context: SinkContext) -> None:
        self.name = name
        self.config = config
        self.context = context

    @abstractmethod
    async def send(self, notification: Notification) -> None:
        """Deliver once; raise DeliveryError (or any exception) on failure."""

    @property
    def refresh_interval(self) -> float | None:
        """How often the core calls `refresh`; None (most sinks) for never."""
        return None

    async def refresh(self, open_incidents: Sequence[Incident], *, monitor: str) -> None:
        """Re-assert the open incidents at a receiver that forgets what is not repeated
        (Alertmanager expires alerts). Raises like `send`; the next call retries."""

    async def aclose(self) -> None:
        """Release resources held by the sink."""
