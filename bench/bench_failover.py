"""Failover time of replicas on one throwaway PostgreSQL, and what the state on PostgreSQL
costs the leader, in three parts of one run:

1. The elector alone: three replica processes (tests/postgres/cluster_child.py, the real Elector
   and RoleSupervisor whose leader work is a fenced write every 50 ms); the leader is killed with
   SIGKILL `--kills` times, and each time a fresh replica joins. Failover is the time from the
   kill to the new leader's first write, both on the database's clock. Baseline: a clean
   hand-over (SIGTERM: the leader resigns and NOTIFYs the standbys).
2. Whole daemons: three `health-monitor run` replicas (tests/postgres/replicas.py) checking a
   local target every 200 ms; the leader is killed with SIGKILL `--kills` times (a fresh replica
   joins after each). Failover is the time from the kill to the first check run the target
   receives from the new leader (standbys run none; the dead leader runs none).
3. The leader's CPU per check: one daemon with `--checks` HTTP checks every second, for
   `--seconds`, its state in SQLite and then on PostgreSQL (the process's user + system CPU
   over the check runs the target received; the target runs in this process).

    .venv/bin/python bench/bench_failover.py [--kills 10] [--handovers 5] [--lease 3] [--checks 50] [--seconds 20]
"""

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ is not installed; the checkout has it
from monitor.pg_migrations import apply_pg_migrations
from tests.postgres.cluster_child import WORK_LOG
from tests.postgres.cluster_helpers import ChildReplica, fresh_database
from tests.postgres.helpers import wait_for
from tests.postgres.pg_server import Cluster, Server, provision
from tests.postgres.replicas import Scene, scene


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


async def elector_failovers(dsn: str, args: argparse.Namespace) -> tuple[list[float], list[float]]:
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
    return handovers, kills


async def ran_within(made: Scene, seconds: float) -> bool:
    return bool(made.target.runs) and made.target.runs[-1] >= time.monotonic() - seconds


async def one_daemon_failover(made: Scene, joining: str) -> float:
    leader = await made.wait_for_leader(within=30)
    await wait_for(lambda: ran_within(made, 1.0), f"{leader} to run its checks", within=30)
    replica = made.replicas.pop(leader)
    killed = time.monotonic()
    replica.signal(signal.SIGKILL)
    await replica.finish()
    dead = time.monotonic()
    while True:
        later = [at for at in made.target.runs if at > dead]
        if later:
            await made.start(joining)
            return later[0] - killed
        if time.monotonic() - killed > 60:
            raise RuntimeError(f"no replica ran a check within 60 s of {leader}'s death")
        await asyncio.sleep(0.01)


async def daemon_failovers(server: Server, args: argparse.Namespace, directory: Path) -> list[float]:
    async with fresh_database(server) as dsn, scene(dsn, directory, args.lease) as made:
        for node in ("r1", "r2", "r3"):
            await made.start(node)
        return [await one_daemon_failover(made, f"r{4 + kill}") for kill in range(args.kills)]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def cpu_per_check(server: Server, args: argparse.Namespace, directory: Path, sqlite: bool) -> float:
    """Milliseconds of the leader's CPU per check run."""
    async with fresh_database(server) as dsn, scene(
        dsn, directory, 15.0, interval="1s", checks=args.checks, sqlite=sqlite
    ) as made:
        daemon = await made.start("cpu")
        if not sqlite:
            await made.wait_for_leader(within=30)
        await asyncio.sleep(3.0)  # past the first runs' spread and the start's own work
        runs, cpu = len(made.target.runs), cpu_seconds(daemon.process.pid)
        await asyncio.sleep(args.seconds)
        checked = len(made.target.runs) - runs
        return (cpu_seconds(daemon.process.pid) - cpu) / checked * 1000


def describe(name: str, seconds: list[float]) -> str:
    return (
        f"{name:<40} n={len(seconds):<3} median {statistics.median(seconds):6.2f} s   "
        f"worst {max(seconds):6.2f} s   best {min(seconds):6.2f} s"
    )


async def measure(server: Server, args: argparse.Namespace) -> None:
    async with fresh_database(server) as dsn:
        handovers, kills = await elector_failovers(dsn, args)
    with tempfile.TemporaryDirectory() as directory:
        daemons = await daemon_failovers(server, args, Path(directory) / "failover")
        on_sqlite = await cpu_per_check(server, args, Path(directory) / "sqlite", sqlite=True)
        on_postgres = await cpu_per_check(server, args, Path(directory) / "postgres", sqlite=False)
    poll = min(args.lease / 3, 5.0)
    print(f"three replicas, leader_lease = {args.lease:g}s (a standby polls every {poll:g}s, plus NOTIFY)")
    print(describe("elector: clean SIGTERM hand-over (baseline)", handovers))
    print(describe("elector: leader killed with SIGKILL", kills))
    print(describe("daemons: kill -9 to the new leader's check", daemons))
    print(f"bound: lease + poll interval = {args.lease + poll * 1.1:.2f} s (the contract: lease + 5 s)")
    median = statistics.median
    print(f"ratio killed / clean hand-over (elector medians): {median(kills) / median(handovers):.0f}x")
    print(f"ratio whole daemons / elector alone (medians): {median(daemons) / median(kills):.2f}x")
    print(f"leader CPU per check, {args.checks} HTTP checks every 1 s for {args.seconds:g} s:")
    print(f"  state in SQLite:     {on_sqlite:6.3f} ms")
    print(f"  state on PostgreSQL: {on_postgres:6.3f} ms   ratio PostgreSQL / SQLite: {on_postgres / on_sqlite:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--handovers", type=int, default=5)
    parser.add_argument("--lease", type=float, default=3.0, help="leader_lease in seconds (the default config: 15)")
    parser.add_argument("--checks", type=int, default=50, help="HTTP checks of the CPU part")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the CPU part measures each store")
    args = parser.parse_args()
    cluster = Cluster(max_connections=100).create()
    try:
        provision(cluster.server)
        asyncio.run(measure(cluster.server, args))
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
