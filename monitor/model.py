"""The values that flow from checks to incidents: statuses, severities and findings."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from monitor.context.model import IncidentContext
from monitor.scrub import scrub, scrub_lines


class Status(IntEnum):
    """A finding's state, in Nagios order so that the worst status is the largest."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Severity(StrEnum):
    """The playbook's incident severities; P1 is the most urgent."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    @property
    def rank(self) -> int:
        """1 for P1 up to 4 for P4: a lower rank is more severe."""
        return int(self.value[1])

    def at_least(self, other: "Severity") -> bool:
        """True when this severity is as urgent as `other` or more."""
        return self.rank <= other.rank


CHECK_ERROR_CODE = "error"
"""The code of the finding that says a check could not run at all."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check run found: a status for one code, with what backs it up.

    `severity` is the check's own default for this finding; the check's
    `severities` overrides in monitor.toml win over it.
    """

    code: str
    status: Status
    summary: str
    severity: Severity | None = None
    evidence: tuple[str, ...] = ()
    values: dict[str, float] = field(default_factory=dict)
    blocks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Every check's text leaves through a Finding: scrubbed once here, it is safe in every
        # alert, API answer, status page and log line built from it.
        object.__setattr__(self, "summary", scrub(self.summary))
        object.__setattr__(self, "evidence", scrub_lines(self.evidence))
    """Codes this failure kept the run from judging ("*" for all): their incidents neither
    confirm nor clear, so a database that is down does not resolve its long-queries incident."""

    @property
    def failing(self) -> bool:
        return self.status is not Status.OK


def worst_status(findings: list[Finding]) -> Status:
    if len(findings) == 1:
        return findings[0].status  # most runs: one finding, no generator to make
    return max((finding.status for finding in findings), default=Status.UNKNOWN)


class TimelineEvent(BaseModel):
    at: datetime
    kind: str
    text: str


class Incident(BaseModel):
    """An incident keyed `check/code`, from its opening to its resolution."""

    id: int = 0
    check: str
    code: str
    severity: Severity
    state: Literal["open", "resolved"] = "open"
    opened_at: datetime
    resolved_at: datetime | None = None
    summary: str
    impact: str
    runbook: str | None = None
    evidence: list[str] = Field(default_factory=list)
    failing_runs: int = 0
    resolution: str | None = None
    timeline: list[TimelineEvent] = Field(default_factory=list)
    paged_at: datetime | None = None
    """When people were first told; None while a silence or maintenance window holds the page."""
    escalates: bool = True
    escalation_level: int = 0
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledgement_note: str | None = None
    response_breached_at: datetime | None = None
    last_update_at: datetime | None = None
    impacted: list[str] = Field(default_factory=list)
    """Dependent checks whose failures were folded into this incident instead of paging."""
    suppressed_runs: int = 0
    postmortem_path: str | None = None
    context: IncidentContext | None = None
    """The diagnosis context gathered when it opened (`[context]`); None where nothing covers its check."""

    @property
    def key(self) -> str:
        return f"{self.check}/{self.code}"

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    @property
    def paged(self) -> bool:
        return self.paged_at is not None

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    def record(self, at: datetime, kind: str, text: str) -> None:
        self.timeline.append(TimelineEvent(at=at, kind=kind, text=text))

    def duration_seconds(self, now: datetime) -> float:
        return ((self.resolved_at or now) - self.opened_at).total_seconds()
