"""Everything a check or a sink may use from the engine, in one small module: `checks.base`
and `alerting.base` import from here and nowhere else in `monitor`, and plugins import
from those two. Nothing here imports a plugin.

Per-plugin metrics: a plugin type declares its gauges (`PluginGauge`, usually a module
constant) and sets them through `PluginMetrics`, which labels each series with the plugin
instance's name and removes every series of that instance when the engine forgets it
(its check removed by a reload), so that a gone check is not reported."""

from dataclasses import dataclass
from typing import Protocol

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

__all__ = [
    "CheckPings", "Clock", "Deployment", "Duration", "Finding", "Incident", "MemoryThreads", "Ping", "PingKind",
    "PingLedger", "PluginGauge", "PluginMetrics", "SecretEnv", "Severity", "SlackThread", "Status", "ThreadStore",
    "TimelineEvent", "format_duration", "incident_lines", "parse_duration", "register_header", "register_secret",
    "runbook_actions", "scrub", "utc_stamp",
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
