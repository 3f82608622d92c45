"""History over 90 days on a fake clock: runs accumulate in memory, are flushed to the state
file, and uptime per window leaves silenced and maintenance runs out while reporting them."""

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from monitor.config import MaintenanceWindow
from monitor.history.aggregate import DAY, HOUR, MINUTE, Accumulator
from monitor.history.service import History
from monitor.history.store import HistoryStore, SqliteHistoryFile
from monitor.store import Silence
from tests.fakes import FakeClock
from tests.history.conftest import STORES, open_store, server_for
from tests.postgres.pg_server import Server

START = datetime(2026, 1, 1, tzinfo=UTC)
EVERY = 600  # one run every 10 minutes: 144 a day
RUNS_A_DAY = 144


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return START + timedelta(days=day, hours=hour, minutes=minute)


MAINTENANCE = MaintenanceWindow.model_validate(
    {"name": "db upgrade", "checks": ["web"], "start": at(40, 2), "end": at(40, 4)}
)
SILENCE = Silence(1, "web", at(70, 9), at(70, 10), "vendor outage")
OUTAGES = [(at(10, 6), at(10, 12)), (at(40, 2), at(40, 4)), (at(70, 9), at(70, 10)),
           (at(85, 13), at(85, 14)), (at(89, 0), at(89, 0, 30))]


def good_at(moment: datetime) -> bool:
    return not any(begins <= moment < ends for begins, ends in OUTAGES)


@pytest.fixture(scope="module", params=STORES)
def module_store_server(request: pytest.FixtureRequest) -> Server | None:
    return server_for(request.param, request)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ninety_days(
    module_store_server: Server | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[History]:
    """`web` ran every 10 minutes for 90 days, its latency 0.1 s (0.5 s on failures); flushed every 6 hours.
    The clock ends one second before day 90."""
    async with open_store(module_store_server, tmp_path_factory.mktemp("history")) as store:
        yield await _ninety_days_on(store)


async def _ninety_days_on(store: HistoryStore) -> History:
    clock = FakeClock(start=START)

    def holds() -> tuple[Sequence[Silence], Sequence[MaintenanceWindow]]:
        return [SILENCE], [MAINTENANCE]

    history = History(store, clock, holds)
    for run in range(90 * RUNS_A_DAY):
        await clock.advance(EVERY if run else 0)
        now = clock.now()
        good = good_at(now)
        history.record("web", now, good, 0.1 if good else 0.5)
        if run % 36 == 35:
            await history.flush(["web"])
    await clock.advance(EVERY - 1)
    await history.flush(["web"])
    return history


@pytest.mark.asyncio(loop_scope="module")
async def test_uptime_per_window_leaves_maintenance_and_silences_out(ninety_days: History) -> None:
    figures = {name: uptime.as_json() for name, uptime in ninety_days.uptimes["web"].items()}
    assert figures["24h"] == {"ratio": round(141 / 144, 6), "runs": 144, "good_runs": 141, "held_runs": 0}
    assert figures["7d"] == {"ratio": round(999 / 1008, 6), "runs": 1008, "good_runs": 999, "held_runs": 0}
    # 30 days hold the silenced hour (6 runs), 90 days the maintenance window too (12 more).
    assert figures["30d"] == {"ratio": round(4305 / 4314, 6), "runs": 4314, "good_runs": 4305, "held_runs": 6}
    assert figures["90d"] == {"ratio": round(12897 / 12942, 6), "runs": 12942, "good_runs": 12897, "held_runs": 18}


@pytest.mark.asyncio(loop_scope="module")
async def test_the_90_day_series_has_one_bucket_a_day_with_that_days_figures(ninety_days: History) -> None:
    days = await ninety_days.check_history("web", "90d")
    assert len(days) == 90 and days[0][0] == int(START.timestamp())
    by_day = {index: bucket for index, (_, bucket) in enumerate(days)}
    assert by_day[10].runs == RUNS_A_DAY and by_day[10].uptime == pytest.approx(108 / 144)
    assert by_day[40].uptime == 1.0 and by_day[40].held_runs == 12  # the window's failures do not count
    assert by_day[11].uptime == 1.0
    assert by_day[10].latency_max == 0.5 and by_day[11].latency_avg == pytest.approx(0.1)


@pytest.mark.asyncio(loop_scope="module")
async def test_fine_buckets_are_kept_only_as_long_as_their_resolution_says(ninety_days: History) -> None:
    store = ninety_days.store
    assert min(await store.buckets("web", MINUTE, 0)) >= int(at(88, 23).timestamp())
    assert min(await store.buckets("web", HOUR, 0)) >= int(at(59, 23).timestamp())
    assert min(await store.buckets("web", DAY, 0)) == int(START.timestamp())
    minutes = await ninety_days.check_history("web", "24h")
    assert len(minutes) == 24 * 60
    assert sum(bucket.runs for _, bucket in minutes) == RUNS_A_DAY


@pytest.mark.asyncio(loop_scope="module")
async def test_the_status_page_series_are_the_day_buckets_and_the_minutes_summed_per_hour(
    ninety_days: History,
) -> None:
    days, hours = await ninety_days.page_series(90, HOUR, 24)
    assert len(days["web"]) == 90 and days["web"][int(at(10, 0).timestamp())].runs == RUNS_A_DAY
    assert days["web"][int(at(10, 0).timestamp())].good == 108
    assert len(hours["web"]) == 24 and sum(bucket.runs for bucket in hours["web"].values()) == RUNS_A_DAY
    assert all(bucket.runs == 6 and bucket.latency_avg == pytest.approx(0.1) for bucket in hours["web"].values()
               if bucket.good == bucket.runs)


async def test_the_store_rolls_minutes_up_into_hours_and_days(history_store: HistoryStore) -> None:
    """Two hours of runs every 30 s, written in two batches (one cutting an hour in half): each
    minute is kept once, and the hours and the day add up what their minutes hold."""
    accumulator = Accumulator()
    base = START.timestamp()
    batches = []
    for second in range(0, 7200, 30):
        accumulator.record("api", base + second, good=second % 600 != 0, latency=second / 7200)
        if second == 5400:
            batches.append(accumulator.take())
    batches.append(accumulator.take())
    assert len(accumulator) == 0
    await history_store.write(batches, START + timedelta(hours=2))
    minutes = await history_store.buckets("api", MINUTE, 0)
    assert len(minutes) == 120
    assert minutes[int(base) + 5400].runs == 2  # the minute cut by the first batch, added up
    hours = await history_store.buckets("api", HOUR, 0)
    assert [(hour.runs, hour.good) for _, hour in sorted(hours.items())] == [(120, 114), (120, 114)]
    (day,) = (await history_store.buckets("api", DAY, 0)).values()
    assert (day.runs, day.good) == (240, 228)
    assert day.latency_max == pytest.approx(7170 / 7200)


async def test_a_store_that_fails_keeps_the_runs_for_the_next_flush(
    history_store: HistoryStore, fake_clock: FakeClock
) -> None:
    class Flaky:
        fail = True

        def __getattr__(self, name: str) -> object:
            return getattr(history_store, name)

        async def write(self, rows, now):  # type: ignore[no-untyped-def]
            if self.fail:
                raise OSError("disk full")
            await history_store.write(rows, now)

    store = Flaky()
    history = History(store, fake_clock, lambda: ([], []))  # type: ignore[arg-type]
    history.record("web", fake_clock.now(), True, 0.2)
    await history.flush(["web"])
    assert history.uptimes["web"]["24h"].runs == 0
    store.fail = False
    history.record("web", fake_clock.now(), False, 0.2)
    await history.flush(["web"])
    assert history.uptimes["web"]["24h"].as_json() == {"ratio": 0.5, "runs": 2, "good_runs": 1, "held_runs": 0}


async def test_a_state_file_of_the_previous_release_gets_the_history_and_ping_tables(tmp_path: Path) -> None:
    """Migration 3 adds them to a file written before they existed; what it held stays."""
    import shutil

    from monitor.ping_ledgers import SqlitePingLedger
    from monitor.pings import Ping, PingKind
    from monitor.sqlite_file import SqliteFile
    from monitor.sqlite_thread import SqliteThread
    from tests.test_store_migrations import PREVIOUS_RELEASE

    path = tmp_path / "state.db"
    shutil.copy(PREVIOUS_RELEASE, path)
    history = SqliteHistoryFile(path)
    accumulator = Accumulator()
    accumulator.record("api", START.timestamp(), True, 0.1)
    history.write([accumulator.take()], START)
    assert history.buckets("api", DAY, 0)[int(START.timestamp())].runs == 1
    file = await SqliteThread.open(path)
    ledger = SqlitePingLedger(file)
    await ledger.watch("backup", START)
    await ledger.record(Ping("backup", START, PingKind.SUCCESS))
    state = await ledger.recent("backup")
    await file.close()
    assert state is not None and len(state.pings) == 1
    with SqliteFile(path) as store:
        assert [(i.id, i.state) for i in store.recent_incidents()] == [(2, "resolved"), (1, "open")]
