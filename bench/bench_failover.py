"""Failover time of replicas on one throwaway PostgreSQL: three replica processes
(tests/postgres/cluster_child.py, the real Elector and RoleSupervisor whose leader work is a
fenced write every 50 ms, standing in for a check run); the leader is killed with SIGKILL
`--kills` times, and each time a fresh replica joins. Failover is the time from the kill to the
new leader's first write, both on the database's clock. The baseline, measured in the same
run, is a clean hand-over: SIGTERM of the leader, which resigns and NOTIFYs the standbys.

    .venv/bin/python bench/bench_failover.py [--kills 10] [--handovers 5] [--lease 3]
"""

import argparse
import asyncio
import signal
import statistics
import sys
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ is not installed; the checkout has it
from monitor.pg_migrations import apply_pg_migrations
from tests.postgres.cluster_child import WORK_LOG
from tests.postgres.cluster_helpers import ChildReplica
from tests.postgres.pg_server import APP, Cluster, provision


class Replicas:
    def __init__(self, dsn: str, lease: float) -> None:
        self.dsn = dsn
        self.lease = lease
        self.running: dict[str, ChildReplica] = {}
        self.gone: list[ChildReplica] = []
        self._count = 0

    async def add(self) -> ChildReplica:
        self._count += 1
        replica = await ChildReplica.start(self.dsn, f"r{self._count}", self.lease)
        self.running[replica.node] = replica
        await replica.wait_for_event("standby", within=15.0)
        return replica

    def remove(self, node: str) -> ChildReplica:
        replica = self.running.pop(node)
        self.gone.append(replica)
        return replica

    async def close(self) -> None:
        await asyncio.gather(*(replica.finish() for replica in [*self.running.values(), *self.gone]))


async def leader_and_epoch(db: asyncpg.Connection) -> tuple[str, int]:
    """Waits until a replica leads and has done its first write."""
    for _ in range(1000):
        row = await db.fetchrow(
            "SELECT leader, epoch FROM cluster_lease WHERE expires_at >= now() AND leader IS NOT NULL "
            "AND EXISTS (SELECT 1 FROM work_log WHERE work_log.epoch = cluster_lease.epoch)"
        )
        if row is not None:
            return row["leader"], row["epoch"]
        await asyncio.sleep(0.02)
    raise RuntimeError("no replica leads")


async def one_failover(db: asyncpg.Connection, replicas: Replicas, how: signal.Signals) -> float:
    node, epoch = await leader_and_epoch(db)
    stopped_at = await db.fetchval("SELECT clock_timestamp()")
    replicas.remove(node).signal(how)
    for _ in range(3000):
        first = await db.fetchval("SELECT min(at) FROM work_log WHERE epoch > $1", epoch)
        if first is not None:
            await replicas.add()
            return (first - stopped_at).total_seconds()
        await asyncio.sleep(0.01)
    raise RuntimeError(f"no replica took over from {node} within 30 s")


def describe(name: str, seconds: list[float]) -> str:
    return (
        f"{name:<34} n={len(seconds):<3} median {statistics.median(seconds):6.2f} s   "
        f"worst {max(seconds):6.2f} s   best {min(seconds):6.2f} s"
    )


async def measure(dsn: str, args: argparse.Namespace) -> None:
    db = await asyncpg.connect(dsn, timeout=10)
    await apply_pg_migrations(db)
    await db.execute(WORK_LOG)
    replicas = Replicas(dsn, args.lease)
    try:
        for _ in range(3):
            await replicas.add()
        handovers = [await one_failover(db, replicas, signal.SIGTERM) for _ in range(args.handovers)]
        kills = [await one_failover(db, replicas, signal.SIGKILL) for _ in range(args.kills)]
    finally:
        await replicas.close()
        await db.close()
    poll = min(args.lease / 3, 5.0)
    print(f"three replicas, leader_lease = {args.lease:g}s (a standby polls every {poll:g}s, plus NOTIFY)")
    print(describe("clean SIGTERM hand-over (baseline)", handovers))
    print(describe("leader killed with SIGKILL", kills))
    print(f"bound: lease + poll interval = {args.lease + poll * 1.1:.2f} s")
    print(f"ratio killed / clean hand-over (medians): {statistics.median(kills) / statistics.median(handovers):.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--handovers", type=int, default=5)
    parser.add_argument("--lease", type=float, default=3.0, help="leader_lease in seconds (the default config: 15)")
    args = parser.parse_args()
    cluster = Cluster(max_connections=40).create()
    try:
        provision(cluster.server)
        asyncio.run(measure(cluster.server.role_dsn(APP), args))
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
