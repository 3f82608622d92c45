"""`type = "webhook"`: every notification POSTed as one JSON document (version "1", see
README.md, "type = webhook") to a URL kept secret, signed with HMAC-SHA256 when a secret is configured,
with the notification id as `Idempotency-Key` so that a receiver can drop the duplicates
that retries may cause."""

import hashlib
import hmac
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from alerting.base import Incident, Notification, NotificationKind, SecretEnv, Severity, Sink, SinkConfig
from alerting.http import Endpoint, post_json
from alerting.messages import render

SIGNATURE_HEADER = "X-Health-Monitor-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class WebhookSinkConfig(SinkConfig):
    url_env: SecretEnv = Field(description="Environment variable holding the URL to POST to.")
    secret_env: SecretEnv | None = Field(
        default=None,
        description=f"Environment variable holding the HMAC key that signs each body ({SIGNATURE_HEADER}).",
    )


class IncidentBody(BaseModel):
    id: int
    key: str
    check: str
    code: str
    severity: Severity
    state: Literal["open", "resolved"]
    opened_at: datetime
    resolved_at: datetime | None
    summary: str
    impact: str
    runbook: str | None
    evidence: list[str]
    resolution: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None

    @classmethod
    def of(cls, incident: Incident) -> "IncidentBody":
        fields = incident.model_dump(include=set(cls.model_fields) - {"key"})
        return cls(key=incident.key, **fields)


class WebhookBody(BaseModel):
    version: Literal["1"] = "1"
    id: str
    kind: NotificationKind
    monitor: str
    created_at: datetime
    previous_severity: Severity | None
    escalation_level: int | None
    escalation_role: str | None
    status: str | None
    progress: list[str]
    incident: IncidentBody
    group: list[IncidentBody]
    text: str


def build_body(notification: Notification) -> WebhookBody:
    return WebhookBody(
        id=notification.id,
        kind=notification.kind,
        monitor=notification.monitor,
        created_at=notification.created_at,
        previous_severity=notification.previous_severity,
        escalation_level=notification.escalation_level,
        escalation_role=notification.escalation_role,
        status=notification.status,
        progress=list(notification.progress),
        incident=IncidentBody.of(notification.incident),
        group=[IncidentBody.of(incident) for incident in notification.group],
        text=render(notification).text,
    )


def sign(body: bytes, secret: str) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSink(Sink[WebhookSinkConfig]):
    type_name = "webhook"
    Config = WebhookSinkConfig

    async def send(self, notification: Notification) -> None:
        body = build_body(notification).model_dump_json().encode()
        headers = {IDEMPOTENCY_HEADER: notification.id}
        if self.config.secret_env is not None:
            headers[SIGNATURE_HEADER] = sign(body, self.config.secret_env.value())
        endpoint = Endpoint(f"webhook {self.name!r}", self.config.url_env.value())
        await post_json(
            self.context.http,
            endpoint,
            body,
            timeout=self.config.timeout,
            now=self.context.clock.now(),
            headers=headers,
        )
