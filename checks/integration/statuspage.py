"""Reading a vendor's Atlassian Statuspage (public API v2, `GET /api/v2/summary.json`):
the overall indicator, unresolved incidents, maintenance in progress and components.

The answer is reused for an interval so vendors are not polled on every run; a failed
read keeps the last good answer, and never fails the check by itself."""

import asyncio
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

from checks.probe import PROBE_ERRORS, probe_failure, read_capped

TROUBLE_INDICATORS = ("minor", "major", "critical")
TROUBLE_COMPONENT_STATUSES = ("degraded_performance", "partial_outage", "major_outage")
_IMPACT_RANK = {"critical": 0, "major": 1, "minor": 2, "maintenance": 3, "none": 4}
_ACTIVE_MAINTENANCE = ("in_progress", "verifying")
_RESOLVED = ("resolved", "postmortem", "completed")
_UPDATE_CHARS = 300


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Page(_Model):
    name: str = ""
    url: str = ""


class Indicator(_Model):
    indicator: str
    description: str = ""


class Component(_Model):
    name: str
    status: str = "operational"


class EventUpdate(_Model):
    status: str = ""
    body: str = ""


class Event(_Model):
    """An incident or a scheduled maintenance, which Statuspage describes alike."""

    id: str
    name: str
    status: str
    impact: str = "none"
    shortlink: str | None = None
    components: list[Component] = []
    incident_updates: list[EventUpdate] = []


class Summary(_Model):
    page: Page = Page()
    status: Indicator
    components: list[Component] = []
    incidents: list[Event] = []
    scheduled_maintenances: list[Event] = []


@dataclass(frozen=True, slots=True)
class VendorEvent:
    kind: Literal["incident", "maintenance"]
    name: str
    status: str
    impact: str
    link: str
    latest_update: str | None

    def describe(self) -> str:
        return f"{self.kind} ({self.status}, impact {self.impact}): {self.name} {self.link}".rstrip()


@dataclass(frozen=True, slots=True)
class VendorStatus:
    """What the vendor reports, narrowed to the configured components when there are any."""

    indicator: str
    description: str
    degraded: bool
    events: tuple[VendorEvent, ...]
    """Unresolved incidents and maintenance in progress, the most severe first."""
    troubled_components: tuple[Component, ...]
    missing_components: tuple[str, ...]
    by_component: bool

    @property
    def headline(self) -> VendorEvent | None:
        """The event to name in a finding."""
        return self.events[0] if self.events else None

    @property
    def trouble(self) -> str:
        """What is wrong, in a few words."""
        if self.by_component:
            return ", ".join(f"{c.name}: {c.status.replace('_', ' ')}" for c in self.troubled_components)
        return f"{self.description or 'trouble'} ({self.indicator})"

    def evidence(self, vendor: str) -> tuple[str, ...]:
        lines = [f"{vendor} status page: {self.description or self.indicator} (indicator {self.indicator})"]
        for event in self.events:
            lines.append(event.describe())
            if event.latest_update:
                lines.append(f"  latest update: {event.latest_update}")
        lines.extend(f"component {c.name}: {c.status}" for c in self.troubled_components)
        return (*lines, *self.configuration_evidence())

    def configuration_evidence(self) -> tuple[str, ...]:
        """Configured components the page does not have: likely a typo that hides their trouble."""
        return tuple(f"component {name!r} is not on the status page" for name in self.missing_components)


def summary_url(url: str) -> str:
    """The summary.json of a Statuspage given either its address or an API URL."""
    if urlsplit(url).path.endswith(".json"):
        return url
    return f"{url.rstrip('/')}/api/v2/summary.json"


def interpret(summary: Summary, components: list[str]) -> VendorStatus:
    """The vendor's state; with `components`, only those components and their incidents count."""
    wanted = {name.casefold() for name in components}
    active: list[tuple[Literal["incident", "maintenance"], Event]] = [
        *(("incident", e) for e in summary.incidents if e.status not in _RESOLVED),
        *(("maintenance", e) for e in summary.scheduled_maintenances if e.status in _ACTIVE_MAINTENANCE),
    ]
    relevant = summary.components
    if wanted:
        active = [(kind, e) for kind, e in active if _touches(e, wanted)]
        relevant = [c for c in summary.components if c.name.casefold() in wanted]
    events = sorted(
        (_event(kind, e, summary.page) for kind, e in active),
        key=lambda e: (e.kind != "incident", _IMPACT_RANK.get(e.impact, len(_IMPACT_RANK))),
    )
    troubled = tuple(c for c in relevant if c.status != "operational")
    found = {c.name.casefold() for c in summary.components}
    return VendorStatus(
        indicator=summary.status.indicator,
        description=summary.status.description,
        degraded=(
            any(c.status in TROUBLE_COMPONENT_STATUSES for c in troubled)
            if wanted
            else summary.status.indicator in TROUBLE_INDICATORS
        ),
        events=tuple(events),
        troubled_components=troubled,
        missing_components=tuple(name for name in components if name.casefold() not in found),
        by_component=bool(wanted),
    )


def _touches(event: Event, wanted: set[str]) -> bool:
    return any(c.name.casefold() in wanted for c in event.components)


def _event(kind: Literal["incident", "maintenance"], event: Event, page: Page) -> VendorEvent:
    latest = event.incident_updates[0].body if event.incident_updates else ""
    return VendorEvent(
        kind=kind,
        name=event.name,
        status=event.status,
        impact=event.impact,
        link=_event_link(event, page),
        latest_update=_shorten(latest) or None,
    )


def _event_link(event: Event, page: Page) -> str:
    # The vendor's own domain reads as more trustworthy in an alert than the stspg.io shortlink.
    if page.url:
        return f"{page.url.rstrip('/')}/incidents/{event.id}"
    return event.shortlink or ""


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _UPDATE_CHARS else flat[: _UPDATE_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True)
class StatusReading:
    status: VendorStatus | None
    """The last good answer, possibly from an earlier read; None if there never was one."""
    error: str | None
    """Why the latest read failed, if it did."""
    age: float
    """Seconds since `status` was read."""


class StatusPageReader:
    """One vendor's status page, read at most once per `max_age` the caller asks for."""

    def __init__(self, url: str, components: list[str]) -> None:
        self.url = url
        self._components = components
        self._status: VendorStatus | None = None
        self._read_at = 0.0
        self._attempted_at: float | None = None
        self._error: str | None = None

    async def read(self, http: aiohttp.ClientSession, now: float, max_age: float, budget: float) -> StatusReading:
        if self._attempted_at is None or now - self._attempted_at >= max_age:
            await self._refresh(http, now, budget)
        return StatusReading(self._status, self._error, now - self._read_at)

    async def _refresh(self, http: aiohttp.ClientSession, now: float, budget: float) -> None:
        self._attempted_at = now
        try:
            summary = await self._fetch(http, budget)
        except StatusPageError as exc:
            self._error = str(exc)
            return
        self._status = interpret(summary, self._components)
        self._read_at = now
        self._error = None

    async def _fetch(self, http: aiohttp.ClientSession, budget: float) -> Summary:
        try:
            async with asyncio.timeout(budget):
                async with http.get(self.url, headers={"Accept": "application/json"}) as response:
                    status, body = response.status, await read_capped(response)
        except PROBE_ERRORS as exc:
            raise StatusPageError(probe_failure(exc, self.url).summary) from None
        if status != 200:
            raise StatusPageError(f"HTTP {status} from {self.url}")
        try:
            return Summary.model_validate_json(body)
        except ValidationError:
            raise StatusPageError(f"{self.url} is not a Statuspage v2 summary (no status.indicator)") from None


class StatusPageError(Exception):
    """The status page could not be read."""
