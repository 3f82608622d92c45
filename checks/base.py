"""The plugin API for checks, after Datadog's AgentCheck: a check is built from its
validated config, `run()` probes once and returns findings, and the core owns the
safety wrapper (timeout, exceptions, concurrency). A check imports what it needs from
the engine from here (re-exported from `monitor.plugin`)."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitor.plugin import (
    CheckPings,
    Clock,
    Duration,
    Finding,
    Ping,
    PingKind,
    PingLedger,
    PluginGauge,
    PluginMetrics,
    SecretEnv,
    Severity,
    Status,
    format_duration,
    parse_duration,
    register_header,
    register_secret,
    scrub,
)

__all__ = [
    "Check", "CheckConfig", "CheckContext", "CheckPings", "Clock", "Duration", "Finding", "Ping", "PingKind",
    "PingLedger", "PluginGauge", "PluginMetrics", "SecretEnv", "Severity", "Status", "format_duration",
    "parse_duration", "register_header", "register_secret", "scrub",
]


class CheckConfig(BaseModel):
    """Keys every check accepts; each check type subclasses this with its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    interval: Duration | None = Field(default=None, description="Defaults to [monitor] interval.")
    timeout: Duration | None = Field(default=None, description="Defaults to [monitor] timeout.")
    failure_threshold: int = Field(default=2, ge=1, description="Consecutive failing runs before an incident opens.")
    success_threshold: int = Field(default=2, ge=1, description="Consecutive good runs before it resolves.")
    severities: dict[str, Severity] = Field(
        default_factory=dict, description="Severity per finding code, overriding the check's defaults."
    )
    impact: str | None = Field(default=None, description="What users notice when this check fails.")
    runbook: str | None = Field(default=None, description="Playbook section (or URL) named in the alert.")
    depends_on: list[str] = Field(
        default_factory=list, description="Checks whose open incidents absorb this check's failures."
    )

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, seconds: float | None) -> float | None:
        if seconds is not None and seconds <= 0:
            raise ValueError("must be greater than 0 (leave the key out to use the [monitor] default)")
        return seconds

    accepts_pings: ClassVar[bool] = False
    """A passive check (heartbeat): the daemon takes pings for it at `/ping/{check}` and keeps
    them in `CheckContext.heartbeats` for the check to judge."""

    def ping_token(self) -> SecretEnv | None:
        """The secret a ping must carry, if any (passive checks only)."""
        return None


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What the daemon lends every check: shared clients, the clock and the metrics."""

    http: aiohttp.ClientSession
    clock: Clock
    metrics: PluginMetrics
    heartbeats: PingLedger | None = None
    """Where heartbeat checks read the pings the server received; None outside the daemon and `once`."""


ConfigT = TypeVar("ConfigT", bound=CheckConfig)


class Check(ABC, Generic[ConfigT]):
    """One configured check. Subclasses set `type_name` and `Config` and implement `run`."""

    type_name: ClassVar[str]
    Config: ClassVar[type[CheckConfig]]
    timeout_code: ClassVar[str] = "down"
    """The finding code used when a run exceeds its timeout."""
    gauges: ClassVar[tuple[PluginGauge, ...]] = ()
    """The type's own gauges, set with `context.metrics.set_gauge`: declared when a check of
    the type is created, so that `/metrics` describes them from the start."""

    def __init__(self, name: str, config: ConfigT, context: CheckContext) -> None:
        self.name = name
        self.config = config
        self.context = context

    async def start(self) -> None:
        """Open long-lived resources (connection pools); called once before the first run."""

    @abstractmethod
    async def run(self) -> list[Finding]:
        """Probe once. May raise: the core turns an exception into an `unknown` finding."""

    def timeout_finding(self, seconds: float) -> Finding:
        """The finding for a run that exceeded its timeout."""
        return Finding(
            code=self.timeout_code,
            status=Status.CRITICAL,
            summary=f"{self.name}: no result within {format_duration(seconds)} (timeout)",
            blocks=("*",),
        )

    async def aclose(self) -> None:
        """Release what `start` opened."""
