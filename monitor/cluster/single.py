"""A SQLite setup: one process, always the leader (epoch 0, no election). Its membership row
lives in the state file's `cluster_members` table (migration 4 of monitor/migrations.py), so
that `health-monitor cluster` can show it as it shows replicas on PostgreSQL."""

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from monitor.clock import Clock
from monitor.cluster.metrics import ClusterMetrics
from monitor.cluster.model import ClusterView, Member, Role
from monitor.cluster.view import SEEN_WITHIN
from monitor.migrations import apply_migrations

log = structlog.get_logger("monitor.cluster")

HEARTBEAT_EVERY = 15.0
FORGET_AFTER = timedelta(days=1)


class SqliteMembership:
    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
        apply_migrations(self._db)  # the table is migration 4 of the state file

    def seen(self, node: str, started_at: datetime, now: datetime) -> None:
        # A process killed without leaving (its default node name has a pid in it) is forgotten a day later.
        self._db.execute("DELETE FROM cluster_members WHERE last_seen < ?", (_stamp(now - FORGET_AFTER),))
        self._db.execute(
            "INSERT INTO cluster_members (node, started_at, last_seen, role, epoch) VALUES (?, ?, ?, ?, 0) "
            "ON CONFLICT (node) DO UPDATE SET started_at = excluded.started_at, last_seen = excluded.last_seen",
            (node, _stamp(started_at), _stamp(now), Role.LEADER.value),
        )

    def leave(self, node: str) -> None:
        self._db.execute("DELETE FROM cluster_members WHERE node = ?", (node,))

    def view(self, now: datetime, seen_within: float = SEEN_WITHIN) -> ClusterView:
        rows = self._db.execute(
            "SELECT node, started_at, last_seen FROM cluster_members WHERE last_seen >= ? ORDER BY node",
            (_stamp(now - timedelta(seconds=seen_within)),),
        ).fetchall()
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

    def close(self) -> None:
        self._db.close()


class SingleProcess:
    """The daemon's cluster on SQLite: leader from start to stop."""

    def __init__(self, node: str, state_path: str | Path, clock: Clock, metrics: ClusterMetrics) -> None:
        self.node = node
        self._membership = SqliteMembership(state_path)
        self._clock = clock
        self._started_at = clock.now()
        self._metrics = metrics
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def leading(self) -> bool:
        return True

    def start(self) -> None:
        self._metrics.role_changed(True, 0)
        self._heartbeat = asyncio.create_task(self._beat_forever(), name="cluster:membership")

    async def view(self) -> ClusterView:
        return self._membership.view(self._clock.now())

    async def aclose(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        self._membership.leave(self.node)
        self._membership.close()

    async def _beat_forever(self) -> None:
        while True:
            try:
                self._membership.seen(self.node, self._started_at, self._clock.now())
            except sqlite3.Error as exc:
                log.warning("cluster.membership_not_written", error=str(exc))
            await self._clock.sleep_until(self._clock.monotonic() + HEARTBEAT_EVERY)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)
