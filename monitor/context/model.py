"""The context gathered for an incident, stored on it (`Incident.context`) as part of its
JSON document: old documents without it still load."""

from datetime import datetime

from pydantic import BaseModel, Field


class Deployment(BaseModel):
    """One Railway deployment, with the commit it shipped; every commit field may be missing."""

    id: str
    status: str
    created_at: datetime
    finished_at: datetime | None = None
    commit_hash: str | None = None
    commit_message: str | None = None
    author: str | None = None
    branch: str | None = None
    can_rollback: bool = False

    @property
    def short_hash(self) -> str | None:
        return self.commit_hash[:7] if self.commit_hash else None


class LogLine(BaseModel):
    at: datetime | None = None
    message: str


class RailwayContext(BaseModel):
    service: str
    """The `[context.railway.NAME]` entry (`default` for the single-service form)."""
    deployments: list[Deployment] = Field(default_factory=list)
    """Newest first."""
    last_deploy: Deployment | None = None
    """The deployment that finished (SUCCESS) last before detection."""
    broken: list[Deployment] = Field(default_factory=list)
    """Deployments that CRASHED or FAILED within the hour before detection."""
    error_lines: list[LogLine] = Field(default_factory=list)
    platform_trouble: str | None = None
    rollback_to: Deployment | None = None
    """Where a rollback goes by default: the last SUCCESS before the current one that can be rolled back to."""
    problems: list[str] = Field(default_factory=list)
    """One short line per vendor failure ("not authorized", "deployment logs: no answer within 5s")."""


class SentryIssue(BaseModel):
    short_id: str
    title: str
    culprit: str | None = None
    count: int = 0
    users: int = 0
    first_seen: datetime | None = None
    permalink: str | None = None
    new_since_deploy: bool = False


class SentryContext(BaseModel):
    issues: list[SentryIssue] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)


class IncidentContext(BaseModel):
    detected_at: datetime
    railway: RailwayContext | None = None
    sentry: SentryContext | None = None
    suspect_deploy: bool = False
    """The last deploy finished within `[context] suspect_window` before detection."""
