"""The state store's writes and reads on SQLite and on PostgreSQL, in the same run.

SQLite: a file in a temporary directory (WAL, synchronous=NORMAL, as the daemon opens it).
PostgreSQL: a throwaway cluster on 127.0.0.1 from /usr/lib/postgresql/*/bin with fsync and
synchronous_commit on (durable commits, like SQLite's). For each store:

- typical: `--changes` sequential `record()`s of one incident opened with its three pages;
- storm, one change: 1,000 incidents opened with 3,000 pages in one `record()`;
- storm, many changes: 1,000 more incidents as 1,000 `record()`s, ten in flight at a time;
- reads: `open_incidents()` and `pending_deliveries()` of all of the above (2,500 and 7,500).

With the daemon's garbage-collector policy (monitor/gc_policy.py). Printed: calls/s, p50/p99
latency per call, and the event loop's longest stall while the scenario ran, measured by a
ticker that wakes every 10 ms (a store that blocked the loop would show here); then
PostgreSQL's figures as a ratio of SQLite's, the embedded default.

    .venv/bin/python bench/bench_store.py [--changes 500]
"""

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor import event_loop, gc_policy
from monitor.model import Incident, Severity
from monitor.postgres_store import PostgresStore
from monitor.sqlite_store import SqliteStore
from monitor.store import OutboxEntry, StateChange, StateStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ is not installed; the checkout has it
from tests.postgres.pg_server import APP, Cluster, provision

STORM = 1_000
SINKS = ("console", "slack", "webhook")
TICK = 0.010
CONCURRENT_WRITERS = 10
"""As many changes in flight at once as the PostgreSQL pool has connections."""
T0 = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Figures:
    calls: int
    seconds: float
    latencies: list[float]
    stall: float
    busy_stall: float

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def line(self, name: str) -> str:
        return (
            f"  {name:<33} {self.per_second:10.0f} calls/s   p50 {self.percentile(0.5) * 1000:8.2f} ms"
            f"   p99 {self.percentile(0.99) * 1000:8.2f} ms   longest loop stall {self.stall * 1000:5.1f} ms"
            f" ({self.busy_stall * 1000:4.1f} ms busy)"
        )


class StallMeter:
    """Wakes every TICK; the longest it woke late is the loop's longest stall. `longest_busy` is
    the longest of those stalls during which this process was busy (its CPU time grew as much):
    the store's own doing, not the machine's other work (a PostgreSQL server on the same two
    cores, other processes) keeping this process off the CPU."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.longest_busy = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, cpu = loop.time() + TICK, time.process_time()
            await asyncio.sleep(TICK)
            late = loop.time() - due
            self.longest = max(self.longest, late)
            self.longest_busy = max(self.longest_busy, min(late, time.process_time() - cpu - TICK))

    @asynccontextmanager
    async def running(self) -> AsyncIterator["StallMeter"]:
        self.longest = self.longest_busy = 0.0
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        try:
            yield self
        finally:
            self._task.cancel()


def opening(incident_id: int) -> StateChange:
    at = T0 + timedelta(seconds=incident_id)
    incident = Incident(
        id=incident_id, check=f"check-{incident_id}", code="down", severity=Severity.P2, opened_at=at,
        summary="HTTP 503 from GET /health", impact="checkout unavailable", evidence=["body: upstream timeout"],
        paged_at=at,
    )  # fmt: skip
    incident.record(at, "opened", "incident opened at P2")
    document = json.dumps({"kind": "opened", "incident": incident_id, "text": f"[P2] check-{incident_id}: HTTP 503"})
    outbox = [OutboxEntry(f"n-{incident_id}-opened", sink, incident_id, "opened", document, at) for sink in SINKS]
    return StateChange(opened=[incident], outbox=outbox)


def merged(changes: list[StateChange]) -> StateChange:
    return StateChange(
        opened=[i for c in changes for i in c.opened], outbox=[e for c in changes for e in c.outbox]
    )


async def timed(calls: list[Callable[[], Awaitable[object]]], writers: int = 1) -> Figures:
    """Each call timed; `writers` coroutines take the calls in turn (several in flight at once)."""
    latencies: list[float] = []
    queue = iter(calls)
    # The inputs built for this scenario live on: out of the collector's sight, as the daemon
    # freezes what it keeps, so that its pauses over them do not count as the store's.
    gc.collect()
    gc.freeze()

    async def writer() -> None:
        for call in queue:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    async with StallMeter().running() as meter:
        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(writers)))
        seconds = time.perf_counter() - started
    return Figures(len(calls), seconds, latencies, meter.longest, meter.longest_busy)


async def measure(store: StateStore, changes: int) -> dict[str, Figures]:
    first = 1
    typical = [opening(n) for n in range(first, first + changes)]
    results = {"typical record": await timed([lambda c=c: store.record(c) for c in typical])}
    first += changes
    one_change = merged([opening(n) for n in range(first, first + STORM)])
    results["storm, one change"] = await timed([lambda: store.record(one_change)])
    first += STORM
    many = [opening(n) for n in range(first, first + STORM)]
    results["storm, many changes (10 writers)"] = await timed(
        [lambda c=c: store.record(c) for c in many], writers=CONCURRENT_WRITERS
    )
    reads, recorded = 50, changes + 2 * STORM
    results[f"open_incidents ({recorded:,})"] = await timed([store.open_incidents] * reads)
    results[f"pending_deliveries ({recorded * len(SINKS):,})"] = await timed([store.pending_deliveries] * reads)
    return results


async def run(dsn: str, changes: int) -> None:
    with tempfile.TemporaryDirectory(prefix="hm-bench-store-") as directory:
        stores: dict[str, StateStore] = {
            "sqlite": await SqliteStore.open(Path(directory) / "state.db"),
            "postgres": await PostgresStore.open(dsn),
        }
        gc_policy.apply()  # as the daemon runs
        async with StallMeter().running() as idle:
            await asyncio.sleep(1.0)
        figures = {}
        for name, store in stores.items():
            try:
                figures[name] = await measure(store, changes)
            finally:
                await store.close()
    print(f"baseline: the loop's longest stall while idle for 1 s: {idle.longest * 1000:.1f} ms")
    for name, results in figures.items():
        print(f"{name} ({stores[name].display if name == 'postgres' else 'a file, WAL, synchronous=NORMAL'}):")
        for scenario, result in results.items():
            print(result.line(scenario))
    print("postgres / sqlite (calls/s; p50 latency):")
    for scenario in figures["sqlite"]:
        pg, lite = figures["postgres"][scenario], figures["sqlite"][scenario]
        print(
            f"  {scenario:<33} {pg.per_second / lite.per_second:6.2f}x throughput"
            f"   {pg.percentile(0.5) / lite.percentile(0.5):6.2f}x latency"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=500, help="typical changes recorded one after another")
    args = parser.parse_args()
    cluster = Cluster(max_connections=40, durable=True).create()
    try:
        provision(cluster.server)
        event_loop.run(run(cluster.server.role_dsn(APP), args.changes))
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
