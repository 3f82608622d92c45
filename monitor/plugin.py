"""Everything a check or a sink may use from the engine, in one small module: `checks.base`
and `alerting.base` import from here and nowhere else in `monitor`, and plugins import
from those two. Nothing here imports a plugin.

Per-plugin metrics: a plugin type declares its gauges (`PluginGauge`, usually a module
constant) and sets them through `PluginMetrics`, which labels each series with the plugin
instance's name and removes every series of that instance when the engine forgets it
(its check removed by a reload), so that a gone check is not reported."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import aiohttp

from monitor.clock import Clock
from monitor.context.model import Deployment
from monitor.context.render import incident_lines
from monitor.durations import Duration, format_duration, parse_duration
from monitor.incident_log import utc_stamp
from monitor.model import Finding, Incident, Severity, Status, TimelineEvent
from monitor.pings import CheckPings, Ping, PingKind, PingLedger
from monitor.runbooks import runbook_actions
from monitor.scrub import register_header, register_secret, scrub
from monitor.secrets import SecretEnv
from monitor.slack_threads import MemoryThreads, SlackThread, ThreadStore
from monitor.store import StoreUnavailable

__all__ = [
    "CheckPings", "Clock", "Deployment", "DeskError", "Duration", "Finding", "Incident", "IncidentDesk",
    "MemoryThreads", "Ping", "PingKind", "PingLedger", "PluginGauge", "PluginMetrics", "SecretEnv", "Severity",
    "SlackThread", "Status", "StoreUnavailable", "ThreadStore", "TimelineEvent", "format_duration",
    "incident_lines", "parse_duration", "register_header", "register_secret", "runbook_actions", "scrub",
    "utc_stamp",
]


@dataclass(frozen=True, slots=True)
class PluginGauge:
    """A gauge a plugin type exports; `labels` are those besides `check`, which every series has."""

    name: str
    documentation: str
    labels: tuple[str, ...] = ()


class PluginMetrics(Protocol):
    def declare(self, *gauges: PluginGauge) -> None:
        """Describe these gauges in `/metrics` (no series until one is set)."""
        ...

    def set_gauge(self, owner: str, gauge: PluginGauge, value: float, **labels: str) -> None:
        """Set `owner`'s series of `gauge` (labelled check=owner and `labels`)."""
        ...

    def remove_gauge(self, owner: str, gauge: PluginGauge, **labels: str) -> None:
        """Remove one of `owner`'s series now (a table that is gone); none there is fine."""
        ...


class DeskError(Exception):
    """The desk could not do what was asked; one line for the person who asked."""


class IncidentDesk(Protocol):
    """What a sink type's own HTTP endpoints (Slack's buttons and `/incident` command) may do
    with incidents: the engine lends one to every route hook the registry lists
    (`monitor.registry.sink_routes`)."""

    clock: Clock
    http: aiohttp.ClientSession
    monitor_name: str

    def sinks(self) -> Sequence[object]:
        """The sinks delivering now (a hook picks its own type's)."""
        ...

    async def incident(self, incident_id: int) -> Incident | None: ...

    async def open_incidents(self) -> list[Incident]: ...

    async def acknowledge(self, incident_id: int, by: str, note: str) -> Incident | None:
        """Stop the incident's escalation; None when it is not open."""
        ...

    async def silence(self, check: str, seconds: float, reason: str) -> datetime:
        """Hold the check's pages for `seconds` from now; when the silence ends, or DeskError
        when it cannot be recorded."""
        ...

    async def annotate(self, incident_id: int, kind: str, text: str) -> None:
        """A timeline entry (and incidents.log line) on the incident."""
        ...

    async def run_action(self, incident: Incident, action: str, argument: str | None, by: str) -> str:
        """A remediation action (`rollback`), run and recorded; its outcome in one line, or DeskError."""
        ...
