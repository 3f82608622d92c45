"""Change events: Railway's deployment webhooks, turned into one change record each (time,
service, deployment, commit), joined to incidents by service and time."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.context.text import clean, parse_time

STARTING_STATUSES = ("QUEUED", "INITIALIZING", "BUILDING", "DEPLOYING", "WAITING")


@dataclass(frozen=True, slots=True)
class Change:
    at: datetime
    service_id: str
    deployment_id: str
    event: str
    """Railway's event type, e.g. Deployment.deployed."""
    status: str
    service_name: str | None = None
    commit_hash: str | None = None
    commit_message: str | None = None
    author: str | None = None
    branch: str | None = None

    def describe(self) -> str:
        """`deploy def5678 SUCCESS: "fix checkout" by alice (main)`"""
        line = f"deploy {self.commit_hash[:7] if self.commit_hash else self.deployment_id} {self.status}"
        if self.commit_message:
            line += f': "{self.commit_message}"'
        if self.author:
            line += f" by {self.author}"
        return line + (f" ({self.branch})" if self.branch else "")

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(), "service_id": self.service_id, "service_name": self.service_name,
            "deployment_id": self.deployment_id, "event": self.event, "status": self.status,
            "commit_hash": self.commit_hash, "commit_message": self.commit_message, "author": self.author,
            "branch": self.branch,
        }


def parse_railway_webhook(payload: Any, received_at: datetime) -> Change:
    """A Railway deployment webhook; ValueError (one line) for anything else."""
    if not isinstance(payload, dict):
        raise ValueError("the body must be a JSON object")
    event = str(payload.get("type") or "")
    if not event.startswith("Deployment."):
        raise ValueError(f"not a deployment event: {clean(event, 60) or 'no type'}")
    details = payload.get("details") if isinstance(payload.get("details"), dict) else {}
    resource = payload.get("resource") if isinstance(payload.get("resource"), dict) else {}
    service = resource.get("service")
    service_id = _id(service)
    deployment_id = _id(resource.get("deployment")) or _text(details.get("id"))
    if not service_id or not deployment_id:
        raise ValueError("a deployment event needs resource.service and a deployment id")
    status = _text(details.get("status")) or event.removeprefix("Deployment.").upper()
    return Change(
        at=parse_time(payload.get("timestamp")) or received_at,
        service_id=service_id,
        deployment_id=deployment_id,
        event=clean(event, 60),
        status=status.upper(),
        service_name=_text(service.get("name")) if isinstance(service, dict) else None,
        commit_hash=_text(details.get("commitHash")),
        commit_message=_text(details.get("commitMessage")),
        author=_text(details.get("commitAuthor")),
        branch=_text(details.get("branch")),
    )


def _id(value: object) -> str | None:
    return _text(value.get("id")) if isinstance(value, dict) else _text(value)


def _text(value: object) -> str | None:
    return clean(value, 120) if isinstance(value, str | int) and str(value).strip() else None
