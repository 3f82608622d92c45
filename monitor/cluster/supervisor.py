"""Starts the leader's work when this replica is elected and stops all of it when it is not.

The work is a set of named async callables, each given the `Term` it runs under (its epoch
goes into every leader-only write). On demotion every task is cancelled at once, before
anything is awaited, then awaited: when `demoted()` returns, nothing of the leader's work runs.
A callable that fails is logged and started again after `restart_after` seconds of `clock`,
for as long as the term lasts.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import structlog

from monitor.clock import Clock
from monitor.cluster.model import Term
from monitor.store import StaleEpoch

log = structlog.get_logger("monitor.cluster")

LeaderWork = Callable[[Term], Awaitable[None]]
RESTART_AFTER = 1.0
STOP_GRACE = 10.0
"""How long cancelled work may take to finish its `finally` blocks before it is reported stuck."""


class RoleSupervisor:
    def __init__(self, work: Mapping[str, LeaderWork], clock: Clock, restart_after: float = RESTART_AFTER) -> None:
        self._work = dict(work)
        self._clock = clock
        self._restart_after = restart_after
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.term: Term | None = None

    @property
    def running(self) -> set[str]:
        """The names of the leader's work items that are running now."""
        return {name for name, task in self._tasks.items() if not task.done()}

    async def promoted(self, term: Term) -> None:
        await self._stop_all()
        self.term = term
        self._tasks = {
            name: asyncio.create_task(self._keep_running(name, work, term), name=f"leader:{name}")
            for name, work in self._work.items()
        }
        log.info("cluster.leader_work_started", epoch=term.epoch, work=sorted(self._work))

    async def demoted(self, term: Term, reason: str) -> None:
        if self.term is term:
            await self._stop_all()
            log.info("cluster.leader_work_stopped", epoch=term.epoch, reason=reason)

    async def aclose(self) -> None:
        await self._stop_all()

    async def _stop_all(self) -> None:
        self.term = None
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, stuck = await asyncio.wait(tasks, timeout=STOP_GRACE)
        for task in stuck:
            log.error("cluster.leader_work_stuck", task=task.get_name(), waited_seconds=STOP_GRACE)

    async def _keep_running(self, name: str, work: LeaderWork, term: Term) -> None:
        while True:
            try:
                await work(term)
                log.error("cluster.leader_work_returned", work=name, epoch=term.epoch)
            except StaleEpoch:
                return  # the elector demotes us; nothing more to do under this term
            except Exception:
                log.exception("cluster.leader_work_failed", work=name, epoch=term.epoch)
            await self._clock.sleep_until(self._clock.monotonic() + self._restart_after)
