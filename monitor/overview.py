"""What the status page and `GET /api/checks` both show of every check: its latest run, the hold
on it, whether it flaps, its uptime per window and, for a heartbeat check, its last ping."""

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from checks.heartbeat.config import HeartbeatConfig
from checks.heartbeat.pings import Ping, PingLedger
from monitor.clock import Clock
from monitor.config import Config
from monitor.history.aggregate import WINDOWS, Uptime
from monitor.history.service import History
from monitor.incident_core import Hold, hold_on
from monitor.status_page import CheckRow, LastRun, check_rows
from monitor.store import StateStore


class Flapping(Protocol):
    def is_flapping(self, check: str) -> bool: ...


class OverviewSource(Protocol):
    """What the daemon lends the overview (the server's view of it)."""

    config: Config
    clock: Clock
    store: StateStore
    last_runs: dict[str, LastRun]
    history: History
    heartbeats: PingLedger
    incidents: Flapping


async def holds(source: OverviewSource, now: datetime) -> dict[str, Hold]:
    silences, windows = await source.store.silences(now), source.config.settings.maintenance
    return {name: hold for name in source.config.checks if (hold := hold_on(name, silences, windows, now))}


async def overview(source: OverviewSource) -> list[CheckRow]:
    now = source.clock.now()
    pings: dict[str, Ping | None] = {}
    for name, config in source.config.checks.items():
        if isinstance(config, HeartbeatConfig):
            state = await source.heartbeats.recent(name)
            pings[name] = state.last if state is not None else None
    return check_rows(
        source.config.checks,
        source.last_runs,
        await holds(source, now),
        flapping={name for name in source.config.checks if source.incidents.is_flapping(name)},
        uptimes=source.history.uptimes,
        last_pings=pings,
    )


def uptime_json(uptimes: Mapping[str, Uptime]) -> dict[str, object]:
    return {window.name: uptimes.get(window.name, Uptime()).as_json() for window in WINDOWS}
