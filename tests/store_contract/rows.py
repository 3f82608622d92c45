"""Rows as the incident core writes them, for the contract tests."""

from datetime import datetime, timedelta

from monitor.model import Incident, Severity
from monitor.store import OutboxEntry
from tests.fakes import START


def incident(incident_id: int, check: str = "api", code: str = "down", at: datetime = START) -> Incident:
    opened = Incident(
        id=incident_id, check=check, code=code, severity=Severity.P1, opened_at=at, summary="HTTP 503",
        impact="checkout down", evidence=["GET / answered 503"], paged_at=at,
    )  # fmt: skip
    opened.record(at, "opened", "incident opened at P1")
    return opened


def resolved(opened: Incident, after: timedelta = timedelta(minutes=5)) -> Incident:
    done = opened.model_copy(deep=True)
    done.state = "resolved"
    done.resolved_at = opened.opened_at + after
    done.resolution = "check passing again"
    done.record(done.resolved_at, "resolved", "check passing again")
    return done


def entry(notification_id: str, sink: str, incident_id: int, at: datetime = START, kind: str = "opened") -> OutboxEntry:
    return OutboxEntry(notification_id, sink, incident_id, kind, f'{{"kind": "{kind}", "id": {incident_id}}}', at)


def pages(incident_id: int, at: datetime = START) -> list[OutboxEntry]:
    """The opening page of `incident_id` for three sinks."""
    return [entry(f"n-{incident_id}-opened", sink, incident_id, at) for sink in ("console", "slack", "webhook")]
