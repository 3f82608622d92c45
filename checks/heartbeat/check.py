"""The heartbeat check: passive, it probes nothing; each run judges the pings the daemon's
server received (`/ping/{check}`), kept by the ledger."""

from typing import ClassVar

from checks.base import Check, Finding, PingLedger
from checks.heartbeat.config import HeartbeatConfig
from checks.heartbeat.judge import judge


class HeartbeatCheck(Check[HeartbeatConfig]):
    type_name: ClassVar[str] = "heartbeat"
    Config = HeartbeatConfig

    async def start(self) -> None:
        await self._ledger().watch(self.name, self.context.clock.now())

    async def run(self) -> list[Finding]:
        ledger = self._ledger()
        state = await ledger.recent(self.name)
        if state is None:  # start() failed, or the ledger was replaced: watch from now
            await ledger.watch(self.name, self.context.clock.now())
            state = await ledger.recent(self.name)
            assert state is not None
        return judge(self.name, self.config, state, self.context.clock.now())

    def _ledger(self) -> PingLedger:
        ledger = self.context.heartbeats
        if ledger is None:
            raise RuntimeError("heartbeat checks need the daemon's state store to keep their pings")
        return ledger
