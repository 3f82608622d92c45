"""A SQLite setup: one process, always the leader (epoch 0, no election). Its membership row
lives in the state file's `cluster_members` table (migration 4 of monitor/migrations.py), so
that `health-monitor cluster` can show it as it shows replicas on PostgreSQL (where the
elector writes the rows and `monitor.cluster.view.PostgresMembership` reads them)."""

import asyncio
import math
import sqlite3
from datetime import UTC, datetime, timedelta

import structlog

from monitor.clock import Clock
from monitor.cluster.elector import RoleListener
from monitor.cluster.metrics import ClusterMetrics
from monitor.cluster.model import ClusterView, Member, Role, Term
from monitor.cluster.view import SEEN_WITHIN
from monitor.sqlite_thread import SqliteThread
from monitor.store import StoreUnavailable

log = structlog.get_logger("monitor.cluster")

HEARTBEAT_EVERY = 15.0
FORGET_AFTER = timedelta(days=1)


class SqliteMembership:
    def __init__(self, file: SqliteThread) -> None:
        self._file = file

    async def seen(self, node: str, started_at: datetime, now: datetime) -> None:
        def seen(db: sqlite3.Connection) -> None:
            # A process killed without leaving (its default node name has a pid in it) is forgotten a day later.
            db.execute("DELETE FROM cluster_members WHERE last_seen < ?", (_stamp(now - FORGET_AFTER),))
            db.execute(
                "INSERT INTO cluster_members (node, started_at, last_seen, role, epoch) VALUES (?, ?, ?, ?, 0) "
                "ON CONFLICT (node) DO UPDATE SET started_at = excluded.started_at, last_seen = excluded.last_seen",
                (node, _stamp(started_at), _stamp(now), Role.LEADER.value),
            )

        await self._file.transaction(seen)

    async def leave(self, node: str) -> None:
        await self._file.run(lambda db: db.execute("DELETE FROM cluster_members WHERE node = ?", (node,)))

    async def view(self, now: datetime, seen_within: float = SEEN_WITHIN) -> ClusterView:
        rows = await self._file.run(lambda db: db.execute(
            "SELECT node, started_at, last_seen FROM cluster_members WHERE last_seen >= ? ORDER BY node",
            (_stamp(now - timedelta(seconds=seen_within)),),
        ).fetchall())
        members = tuple(
            Member(node, Role.LEADER, 0, _parse(started), _parse(last_seen)) for node, started, last_seen in rows
        )
        leader = members[0] if members else None
        return ClusterView(
            mode="single",
            leader=leader.node if leader else None,
            epoch=0,
            since=leader.started_at if leader else None,
            members=members,
        )


class SingleProcess:
    """A daemon that leads from start to stop (one term, epoch 0, trusted for ever), with the
    interface of `monitor.cluster.replicated.Replicated`; its membership row in the state file."""

    def __init__(
        self,
        node: str,
        membership: SqliteMembership,
        clock: Clock,
        metrics: ClusterMetrics,
        listener: RoleListener,
    ) -> None:
        self.node = node
        self._membership = membership
        self._clock = clock
        self._started_at = clock.now()
        self._metrics = metrics
        self._listener = listener
        self._heartbeat: asyncio.Task[None] | None = None
        self.term = Term(node, 0, self._started_at, trusted_until=math.inf)

    @property
    def leading(self) -> bool:
        return True

    async def start(self) -> None:
        """Promoted at once: the listener starts the leader's work."""
        self._metrics.role_changed(True, 0)
        self._heartbeat = asyncio.create_task(self._beat_forever(), name="cluster:membership")
        await self._listener.promoted(self.term)

    async def view(self) -> ClusterView:
        return await self._membership.view(self._clock.now())

    async def aclose(self) -> None:
        await self._listener.demoted(self.term, "stopping")
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        try:
            await self._membership.leave(self.node)
        except StoreUnavailable as exc:
            log.warning("cluster.membership_not_written", error=str(exc))

    async def _beat_forever(self) -> None:
        while True:
            try:
                await self._membership.seen(self.node, self._started_at, self._clock.now())
            except StoreUnavailable as exc:
                log.warning("cluster.membership_not_written", error=str(exc))
            await self._clock.sleep_until(self._clock.monotonic() + HEARTBEAT_EVERY)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)
