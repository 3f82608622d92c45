"""History written straight into a state file, as a daemon that ran for 90 days would have left it."""

from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web

from monitor.history.aggregate import Accumulator
from monitor.history.store import SqliteHistoryFile


def seed_history(state: Path, now: datetime) -> None:
    """`api` ran every 5 minutes for 90 days: down for 4 hours 12 days ago (02:00-06:00 UTC, all in
    one day whatever the hour now), slower in the last hour."""
    accumulator = Accumulator()
    moment = now - timedelta(days=89, hours=now.hour, minutes=now.minute)
    outage_start = (now - timedelta(days=12)).replace(hour=2, minute=0, second=0, microsecond=0)
    outage = (outage_start, outage_start + timedelta(hours=4))
    while moment < now:
        good = not outage[0] <= moment < outage[1]
        latency = 0.4 if moment > now - timedelta(hours=1) else 0.05 + (moment.minute % 15) / 1000
        accumulator.record("api", moment.timestamp(), good, latency)
        moment += timedelta(minutes=5)
    store = SqliteHistoryFile(state)
    store.write([accumulator.take()], now)
    store.close()


def healthy_target() -> web.Application:
    """The checked service of a seeded state file: `GET /health` answers 200."""

    async def healthy(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/health", healthy)
    return app
