"""The incident pipeline on a fake clock: a config from TOML, the daemon's own `Pipeline`
(incident core, notifier, recorder, dispatcher) on a real SQLite store, and sinks that
record what reached them and when."""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from alerting.base import Notification, NotificationKind, Sink, SinkConfig, SinkContext
from monitor.config import Config, load_config
from monitor.metrics import MonitorMetrics
from monitor.model import Finding, Severity, Status
from monitor.pipeline import Pipeline
from monitor.runner import RunResult
from monitor.sqlite_store import SqliteStore
from monitor.store_guard import GuardedStore
from tests.fakes import START, FakeClock, settle

DOWN = Finding("down", Status.CRITICAL, "GET http://127.0.0.1/health failed: HTTP 503", Severity.P1, ("body: oops",))
UP = Finding("down", Status.OK, "HTTP 200 in 12ms")

CHAIN = """
[[escalation]]
level = 1
after = "0m"
role = "On-call Engineer"
notify = ["oncall"]
[[escalation]]
level = 2
after = "15m"
role = "Team Lead"
notify = ["lead"]
[[escalation]]
level = 3
after = "30m"
role = "Engineering Manager"
notify = ["manager"]
severities = ["P1", "P2"]
[[escalation]]
level = 4
after = "60m"
role = "CTO"
notify = ["cto"]
severities = ["P1", "P2"]
"""


@dataclass(frozen=True)
class Received:
    at: datetime
    notification: Notification

    @property
    def minute(self) -> float:
        return (self.at - START).total_seconds() / 60

    @property
    def kind(self) -> NotificationKind:
        return self.notification.kind


class RecordingSink(Sink[SinkConfig]):
    type_name = "recording"
    Config = SinkConfig

    def __init__(self, name: str, config: SinkConfig, context: SinkContext) -> None:
        super().__init__(name, config, context)
        self.received: list[Received] = []

    async def send(self, notification: Notification) -> None:
        self.received.append(Received(self.context.clock.now(), notification))


def write_config(tmp_path: Path, checks: str, extra: str = "", sinks: tuple[str, ...] = ()) -> Path:
    names = sinks or ("oncall", "lead", "manager", "cto", "log")
    sink_tables = "".join(f'\n[sinks.{name}]\ntype = "console"\n' for name in names)
    path = tmp_path / "monitor.toml"
    path.write_text(
        f"""
[monitor]
name = "harness"
state_path = "{tmp_path}/state.db"
incident_log = "{tmp_path}/incidents.log"
postmortem_dir = "{tmp_path}/postmortems"
{extra}
{checks}
{sink_tables}
"""
    )
    return path


def http_check(name: str, **keys: str) -> str:
    lines = "".join(f"{key} = {value}\n" for key, value in keys.items())
    return f'\n[checks.{name}]\ntype = "http"\nurl = "http://127.0.0.1:9/{name}"\n{lines}'


class Harness:
    """Built with `await Harness.open(config_path, clock)`."""

    def __init__(self, config_path: Path, clock: FakeClock) -> None:
        self.config_path = config_path
        self.clock = clock
        self.config: Config = load_config(config_path)
        self.metrics = MonitorMetrics()
        self.sinks = {
            name: RecordingSink(name, sink_config, SinkContext(None, clock))  # type: ignore[arg-type]
            for name, sink_config in self.config.sinks.items()
        }

    @classmethod
    async def open(cls, config_path: Path, clock: FakeClock) -> "Harness":
        harness = cls(config_path, clock)
        await harness.start()
        return harness

    async def start(self) -> None:
        self.store = await SqliteStore.open(self.config.monitor.state_path)
        guarded = GuardedStore(self.store, self.metrics, self.clock)
        sinks: dict[str, Sink] = dict(self.sinks)
        self.pipeline = await Pipeline.open(self.config, guarded, sinks, self.metrics, self.clock, None)
        self.manager = self.pipeline.incidents
        self.dispatcher = self.pipeline.dispatcher
        self.notifier = self.pipeline.notifier

    async def restart(self) -> None:
        await self.close()
        await self.start()

    async def close(self) -> None:
        await self.pipeline.close(grace=1)
        await self.pipeline.store.close()

    async def observe(self, check: str, *runs: list[Finding]) -> None:
        for findings in runs:
            await self.pipeline.on_result(RunResult(check, findings, 0.0))
            await self.delivered()

    async def minutes(self, minutes: float, every: float = 1.0) -> None:
        """Let time pass, ticking as the daemon does every second."""
        for _ in range(round(minutes * 60 / every)):
            await self.clock.advance(every)
            await self.pipeline.tick()
            await self.dispatcher.idle()  # what the tick sent arrives before the clock moves on
        await self.delivered()

    async def delivered(self) -> None:
        """Until what the pipeline handed the sinks reached them and its outcome is recorded."""
        await settle()
        await self.dispatcher.idle()

    def kinds(self, sink: str) -> list[tuple[float, NotificationKind]]:
        return [(round(r.minute, 2), r.kind) for r in self.sinks[sink].received]
