"""Replicas on PostgreSQL: the elector campaigns for the lease on a connection of its own, and
each term it wins is handed to the daemon (a `RoleListener`), which starts the leader's work
and stops all of it when the term ends. `SingleProcess` (monitor/cluster/single.py) is the same
interface for a SQLite setup, promoted at once."""

from monitor.clock import Clock
from monitor.cluster.elector import Elector, RoleListener
from monitor.cluster.lease import LeaseTiming
from monitor.cluster.metrics import ClusterMetrics
from monitor.cluster.model import ClusterView
from monitor.cluster.view import ClusterMembers


class Replicated:
    def __init__(
        self,
        dsn: str,
        node: str,
        lease: float,
        listener: RoleListener,
        membership: ClusterMembers,
        clock: Clock,
        metrics: ClusterMetrics,
    ) -> None:
        self._clock = clock
        self._membership = membership
        self._metrics = metrics
        self.elector = Elector(dsn, node, LeaseTiming(lease), listener, clock, clock.now(), metrics)

    @property
    def leading(self) -> bool:
        return self.elector.leading

    async def start(self) -> None:
        """Campaign from now on; a standby until the lease is won (the listener hears it)."""
        self._metrics.leader.set(0)
        self.elector.start()

    async def view(self) -> ClusterView:
        return await self._membership.view(self._clock.now())

    async def aclose(self) -> None:
        """A leader stops its work first, then resigns: a standby takes over at once."""
        await self.elector.aclose()
