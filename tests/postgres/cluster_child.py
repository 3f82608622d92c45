"""A small replica for the failover tests: runs an Elector whose leader work writes a fenced row
into `work_log` every 50 ms, and prints one JSON line per event on stdout
(`standby`, `elected`, `stepped_down`, `write_rejected`, `late_write`, `stopped`).

    CLUSTER_CHILD_DSN=postgresql://... python -m tests.postgres.cluster_child NODE LEASE_SECONDS

SIGTERM stops it cleanly: the leader's work stops, then it resigns.
"""

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime

import asyncpg
import structlog

from monitor.clock import SystemClock
from monitor.cluster.elector import Elector
from monitor.cluster.fence import fenced_execute
from monitor.cluster.lease import LeaseTiming
from monitor.cluster.model import Term
from monitor.cluster.supervisor import RoleSupervisor
from monitor.store import StaleEpoch

WORK_EVERY = 0.05
WORK_LOG = """
CREATE TABLE IF NOT EXISTS work_log (node text NOT NULL, epoch bigint NOT NULL, at timestamptz NOT NULL)
"""
WRITE = "INSERT INTO work_log (node, epoch, at) SELECT $1, $2, clock_timestamp() WHERE {fence}"


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class Replica:
    def __init__(self, dsn: str, node: str, lease: float) -> None:
        self.dsn = dsn
        self.node = node
        self.clock = SystemClock()
        self.supervisor = RoleSupervisor({"write": self.write_forever}, self.clock)
        self.elector = Elector(dsn, node, LeaseTiming(lease), self, self.clock, datetime.now(UTC))

    async def promoted(self, term: Term) -> None:
        emit("elected", epoch=term.epoch)
        await self.supervisor.promoted(term)

    async def demoted(self, term: Term, reason: str) -> None:
        await self.supervisor.demoted(term, reason)
        emit("stepped_down", epoch=term.epoch, reason=reason)
        # What a write in flight when the pause began meets once the process runs again (on a
        # connection of its own: the cancelled work may have left its connection mid-statement).
        try:
            late = await asyncpg.connect(self.dsn, timeout=10)
            try:
                await fenced_execute(late, term, WRITE, self.node, term.epoch)
            finally:
                await late.close()
            emit("late_write", epoch=term.epoch, rejected=False)
        except StaleEpoch:
            emit("late_write", epoch=term.epoch, rejected=True)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            emit("late_write", epoch=term.epoch, rejected=None, error=type(exc).__name__)

    async def write_forever(self, term: Term) -> None:
        while True:
            try:
                await fenced_execute(self.work, term, WRITE, self.node, term.epoch)
            except StaleEpoch:
                emit("write_rejected", epoch=term.epoch)
                raise
            await asyncio.sleep(WORK_EVERY)

    async def run(self) -> None:
        self.work = await asyncpg.connect(self.dsn, timeout=10)
        await self.work.execute(WORK_LOG)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        self.elector.start()
        emit("standby")
        await stop.wait()
        await self.elector.aclose()
        await self.supervisor.aclose()
        await self.work.close()
        emit("stopped")


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout carries the events
    asyncio.run(Replica(os.environ["CLUSTER_CHILD_DSN"], sys.argv[1], float(sys.argv[2])).run())
