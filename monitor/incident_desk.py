"""The engine's side of `monitor.plugin.IncidentDesk`: what a sink type's own endpoints may do
with incidents, done through the daemon (its store, its acknowledgement and annotation, which
on a standby leave the change for the leader, and its diagnosis context)."""

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import aiohttp

from monitor.clock import Clock
from monitor.config import Config
from monitor.context.actions import ActionError
from monitor.context.service import ContextService
from monitor.model import Incident
from monitor.plugin import DeskError
from monitor.store import StateStore, StoreError, StoreUnavailable


class DeskSource(Protocol):
    """The daemon, as the desk reads it (its parts exist once it runs)."""

    config: Config
    clock: Clock
    http: aiohttp.ClientSession
    store: StateStore
    context: ContextService

    @property
    def sinks(self) -> Mapping[str, object]:
        """The configured sinks (on a standby too)."""
        ...

    async def acknowledge(self, incident_id: int, by: str, note: str) -> Incident | None: ...

    async def annotate(self, incident_id: int, kind: str, text: str) -> Incident | None:
        """On the leader's pipeline; written for the leader to apply on a standby."""
        ...


class DaemonDesk:
    def __init__(self, daemon: DeskSource) -> None:
        self._daemon = daemon
        self.clock = daemon.clock

    @property
    def http(self) -> aiohttp.ClientSession:
        return self._daemon.http

    @property
    def monitor_name(self) -> str:
        return self._daemon.config.monitor.name

    def sinks(self) -> Sequence[object]:
        return list(self._daemon.sinks.values())

    async def incident(self, incident_id: int) -> Incident | None:
        return await self._daemon.store.get_incident(incident_id)

    async def open_incidents(self) -> list[Incident]:
        return await self._daemon.store.open_incidents()

    async def acknowledge(self, incident_id: int, by: str, note: str) -> Incident | None:
        return await self._daemon.acknowledge(incident_id, by, note)

    async def silence(self, check: str, seconds: float, reason: str) -> datetime:
        now = self.clock.now()
        try:
            silence = await self._daemon.store.add_silence(check, now, now + timedelta(seconds=seconds), reason)
        except (StoreError, StoreUnavailable) as exc:
            raise DeskError(str(exc)) from None
        return silence.ends_at

    async def annotate(self, incident_id: int, kind: str, text: str) -> None:
        await self._daemon.annotate(incident_id, kind, text)

    async def run_action(self, incident: Incident, action: str, argument: str | None, by: str) -> str:
        try:
            _, text = await self._daemon.context.run_action(incident, action, argument, by)
        except ActionError as exc:
            raise DeskError(str(exc)) from None
        return text
