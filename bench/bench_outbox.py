"""1,000 notifications through the durable outbox (persist in the state store, per-sink queue,
retry wrapper, mark delivered) to a local receiver, on SQLite and on PostgreSQL (a throwaway
cluster from /usr/lib/postgresql/*/bin, fsync on), beside the same 1,000 POSTs sent directly
one after another in the same run. The sink posts the same JSON body in every case, so the
difference is what the outbox adds.

    .venv/bin/python bench/bench_outbox.py [--notifications 1000]
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerting.base import Notification, NotificationKind, Sink, SinkConfig, SinkContext  # noqa: E402
from monitor import logs  # noqa: E402
from monitor.clock import SystemClock  # noqa: E402
from monitor.dispatcher import Dispatcher, Outgoing  # noqa: E402
from monitor.metrics import MonitorMetrics  # noqa: E402
from monitor.model import Incident, Severity  # noqa: E402
from monitor.postgres_store import PostgresStore  # noqa: E402
from monitor.sqlite_store import SqliteStore  # noqa: E402
from monitor.store import StateStore  # noqa: E402
from tests.postgres.pg_server import APP, Cluster, provision  # noqa: E402


class PostSink(Sink[SinkConfig]):
    type_name = "bench"
    Config = SinkConfig
    url = ""

    async def send(self, notification: Notification) -> None:
        await post(self.context.http, self.url, notification)


async def post(http: aiohttp.ClientSession, url: str, notification: Notification) -> None:
    async with http.post(url, data=notification.model_dump_json(), headers={"Content-Type": "application/json"}) as r:
        r.raise_for_status()


def notifications(count: int) -> list[Notification]:
    now = datetime.now(UTC)
    return [
        Notification(
            id=f"{i}:initial",
            kind=NotificationKind.INITIAL,
            incident=Incident(id=i, check=f"c{i}", code="down", severity=Severity.P2, opened_at=now,
                              summary="HTTP 503", impact="-", evidence=["failure: status"]),
            monitor="bench",
            created_at=now,
        )
        for i in range(count)
    ]


async def main(count: int, dsn: str) -> None:
    logs.configure("warning")
    received: dict[str, float] = {}

    async def receive(request: web.Request) -> web.Response:
        body = await request.json()
        received[body["id"]] = time.perf_counter()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"

    async with aiohttp.ClientSession() as http:
        items = notifications(count)
        started = time.perf_counter()
        direct_latencies = []
        for item in items:
            sent = time.perf_counter()
            await post(http, url, item)
            direct_latencies.append(time.perf_counter() - sent)
        direct_seconds = time.perf_counter() - started
        print(f"{count} notifications to a local receiver")
        median_post = statistics.median(direct_latencies) * 1e3
        print(f"  direct POSTs:          {count / direct_seconds:.0f}/s, median POST {median_post:.2f} ms")
        stores = {
            "SQLite": lambda: SqliteStore.open(Path(tempfile.mkdtemp()) / "state.db"),
            "PostgreSQL": lambda: PostgresStore.open(dsn),
        }
        for name, open_store in stores.items():
            received.clear()
            store = await open_store()
            try:
                seconds, latencies = await through_outbox(http, url, store, count, received)
            finally:
                await store.close()
            assert len(received) == count, f"{len(received)} of {count} arrived"
            added = (seconds - direct_seconds) / count * 1e3
            print(f"  via outbox on {name + ':':<11} {count / seconds:.0f}/s, added per notification {added:.2f} ms"
                  f" (persist, queue, mark delivered), all {count} submitted at once:"
                  f" submit-to-arrival p50 {statistics.median(latencies) * 1e3:.0f} ms;"
                  f" throughput ratio outbox/direct {direct_seconds / seconds:.2f}")
    await runner.cleanup()


async def through_outbox(
    http: aiohttp.ClientSession, url: str, store: StateStore, count: int, received: dict[str, float]
) -> tuple[float, list[float]]:
    clock = SystemClock()
    sink = PostSink("bench", SinkConfig(type="bench"), SinkContext(http, clock))
    sink.url = url
    # One POST per notification, as the direct loop sends (storm grouping would carry 50 a POST).
    dispatcher = Dispatcher({"bench": sink}, store, MonitorMetrics(), clock, group_at=count + 1)
    submitted: dict[str, float] = {}
    started = time.perf_counter()
    for item in notifications(count):
        submitted[item.id] = time.perf_counter()
        await dispatcher.submit([Outgoing(item)])
    await dispatcher.drain(timeout=600)
    seconds = time.perf_counter() - started
    return seconds, sorted(received[key] - submitted[key] for key in submitted)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=1000)
    cluster = Cluster(max_connections=40, durable=True).create()
    try:
        provision(cluster.server)
        asyncio.run(main(parser.parse_args().notifications, cluster.server.role_dsn(APP)))
    finally:
        cluster.destroy()
