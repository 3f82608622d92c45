"""The flush as the daemon runs it: every minute flushed, uptime kept up to date from what each
flush wrote rather than summed from the tables, and recording that leaves the garbage
collector nothing to do."""

import asyncio
import gc
from datetime import UTC, datetime, timedelta

from monitor.history.aggregate import HOUR, MINUTE, WINDOWS, Accumulator, Uptime
from monitor.history.service import History
from monitor.history.store import HistoryStore
from tests.fakes import FakeClock

START = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)


async def summed_from_store(store: HistoryStore, now: datetime) -> dict[str, dict[str, Uptime]]:
    by_window = {window.name: await store.totals(window.resolution, window.since(now)) for window in WINDOWS}
    return {
        check: {name: totals.get(check, Uptime()) for name, totals in by_window.items()}
        for check in ("api", "web")
    }


async def test_uptimes_kept_from_each_flush_equal_the_stores_sums_across_hours_and_days(
    history_store: HistoryStore,
) -> None:
    """Flushed every minute for three hours across midnight, `api` failing one run in seven."""
    clock = FakeClock(start=START)
    history = History(history_store, clock, lambda: ([], []))
    run = 0
    for _ in range(180):
        for _ in range(6):
            await clock.advance(10)
            run += 1
            history.record("api", clock.now(), run % 7 != 0, 0.05)
            history.record("web", clock.now(), True, 0.02)
        await history.flush(["api", "web"])
        assert dict(history.uptimes) == await summed_from_store(history_store, clock.now())
    assert history.uptimes["api"]["24h"].runs == 1080
    assert history.uptimes["api"]["24h"].good == 1080 - 1080 // 7


async def test_every_minute_flushed_is_in_the_minute_and_hour_tables(
    history_store: HistoryStore, fake_clock: FakeClock
) -> None:
    store = history_store
    history = History(store, fake_clock, lambda: ([], []))
    first = MINUTE.floor(fake_clock.now().timestamp())
    for minute in range(5):
        for second in (0, 20, 40):
            history.record("api", datetime.fromtimestamp(first + minute * 60 + second, UTC), True, 0.1 * (minute + 1))
        if minute % 2:
            await history.flush(["api"])
    await history.flush(["api"])
    minutes = await store.buckets("api", MINUTE, first)
    assert [(start - first, bucket.runs) for start, bucket in sorted(minutes.items())] == [
        (minute * 60, 3) for minute in range(5)
    ]
    hours = await store.buckets("api", HOUR, 0)
    assert sum(bucket.runs for bucket in hours.values()) == 15
    assert max(bucket.latency_max for bucket in hours.values()) == 0.5


def test_recording_a_run_allocates_nothing_the_garbage_collector_follows() -> None:
    """A run of a check that already ran this minute adds to numbers in place: 10,000 checks'
    history must not make the collector run (and stall the loop) as the minute fills up."""
    accumulator = Accumulator()
    at = START.timestamp()
    checks = [f"check-{number}" for number in range(1000)]
    for check in checks:
        accumulator.record(check, at, True, 0.1)
    gc.disable()
    try:
        before = gc.get_count()[0]
        for second in range(1, 50):
            for check in checks:
                accumulator.record(check, at + second, second % 3 != 0, 0.1, held=second % 5 == 0)
        allocated = gc.get_count()[0] - before
    finally:
        gc.enable()
    assert allocated < 10
    batch = accumulator.take()
    seventh = batch.checks.index("check-7")
    runs = [(minute.runs[seventh], minute.good[seventh], minute.held_runs[seventh]) for minute in batch.minutes]
    assert tuple(map(sum, zip(*runs, strict=True))) == (50, 50 - 16, 9)


async def test_after_a_restart_the_windows_are_summed_from_the_store_once(history_store: HistoryStore) -> None:
    """A new History on the same store (a restarted daemon) sums its windows at its first flush,
    then adds each flush's runs: every run counted once."""
    clock = FakeClock(start=START + timedelta(days=1))
    history = History(history_store, clock, lambda: ([], []))
    history.record("api", clock.now(), True, 0.1)
    await history.flush(["api"])
    again = History(history_store, clock, lambda: ([], []))
    await again.flush(["api"])
    again.record("api", clock.now(), False, 0.1)
    await again.flush(["api"])
    assert again.uptimes["api"]["24h"].as_json() == {"ratio": 0.5, "runs": 2, "good_runs": 1, "held_runs": 0}


async def test_a_flush_cancelled_at_stop_still_writes_the_runs_it_took(
    history_store: HistoryStore, fake_clock: FakeClock
) -> None:
    """The daemon cancels the flushing task at stop, then flushes once more: the runs taken by
    the cancelled flush are written (once), not lost with it."""
    release = asyncio.Event()

    class Slow:
        def __getattr__(self, name: str) -> object:
            return getattr(history_store, name)

        async def write(self, rows, now):  # type: ignore[no-untyped-def]
            await release.wait()
            await history_store.write(rows, now)

    history = History(Slow(), fake_clock, lambda: ([], []))  # type: ignore[arg-type]
    history.record("api", fake_clock.now(), True, 0.1)
    flushing = asyncio.create_task(history.flush(["api"]))
    await asyncio.sleep(0)
    flushing.cancel()
    history.record("api", fake_clock.now(), False, 0.1)
    final = asyncio.create_task(history.flush(["api"]))
    await asyncio.sleep(0)
    release.set()
    await final
    assert flushing.cancelled()
    (bucket,) = (await history_store.buckets("api", MINUTE, 0)).values()
    assert (bucket.runs, bucket.good) == (2, 1)
    assert history.uptimes["api"]["24h"].runs == 2
