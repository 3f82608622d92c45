"""A heartbeat check's life on a fake clock: pings kept by the ledger, judged by the check."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from checks.base import CheckContext
from checks.heartbeat import HeartbeatCheck, HeartbeatConfig
from checks.heartbeat.judge import expected_by
from checks.heartbeat.pings import PINGS_KEPT, Ping, PingKind, SqlitePingLedger
from monitor.metrics import MonitorMetrics
from monitor.model import Finding, Status
from monitor.sqlite_thread import SqliteThread
from tests.fakes import FakeClock

HOUR = 3600.0


class Watched:
    """One heartbeat check, its ledger in a state file, and a fake clock."""

    def __init__(self, path: Path, clock: FakeClock, file: SqliteThread, **keys: Any) -> None:
        self.path, self.clock, self.keys = path, clock, keys
        self._file = file
        self.ledger = SqlitePingLedger(file)
        self.check = self._check()

    @classmethod
    async def open(cls, path: Path, clock: FakeClock, **keys: Any) -> "Watched":
        return cls(path, clock, await SqliteThread.open(path), **keys)

    def _check(self) -> HeartbeatCheck:
        config = HeartbeatConfig.model_validate({"type": "heartbeat", **self.keys})
        context = CheckContext(None, self.clock, MonitorMetrics(), self.ledger)  # type: ignore[arg-type]
        return HeartbeatCheck("backup", config, context)

    async def ping(self, kind: PingKind = PingKind.SUCCESS, body: str = "", rid: str | None = None,
                   exit_status: int | None = None) -> None:
        await self.ledger.record(Ping("backup", self.clock.now(), kind, exit_status, rid, body))

    async def judged(self) -> dict[str, Finding]:
        return {finding.code: finding for finding in await self.check.run()}

    async def failing(self) -> set[str]:
        return {code for code, finding in (await self.judged()).items() if finding.failing}

    async def restart(self) -> None:
        """The daemon stops and starts again: a new ledger on the same state file, a new check."""
        await self.close()
        self._file = await SqliteThread.open(self.path)
        self.ledger = SqlitePingLedger(self._file)
        self.check = self._check()

    async def close(self) -> None:
        await self._file.close()


@pytest.fixture
async def daily(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[Watched]:
    watched = await Watched.open(tmp_path / "state.db", fake_clock, period="1d", grace="1h", max_runtime="2h")
    await watched.check.start()
    yield watched
    await watched.close()


async def test_a_job_that_pings_on_time_stays_ok(daily: Watched) -> None:
    for _ in range(5):
        await daily.clock.advance(24 * HOUR - 60)
        await daily.ping()
        assert await daily.failing() == set()
    assert "last ping" in (await daily.judged())["missed"].summary


async def test_no_ping_within_period_and_grace_is_missed(daily: Watched) -> None:
    await daily.ping()
    await daily.clock.advance(25 * HOUR - 1)
    assert await daily.failing() == set()
    await daily.clock.advance(2)
    missed = (await daily.judged())["missed"]
    assert missed.status is Status.CRITICAL and "missed" in missed.summary
    await daily.ping()
    assert await daily.failing() == set()


async def test_a_check_that_never_pinged_is_missed_one_period_after_watching_began(daily: Watched) -> None:
    await daily.clock.advance(25 * HOUR + 1)
    assert await daily.failing() == {"missed"}


async def test_a_failed_run_carries_the_last_lines_of_its_log(daily: Watched) -> None:
    log = "\n".join(f"step {n} ok" for n in range(30)) + "\npg_dump: error: connection refused\n"
    await daily.ping(PingKind.FAIL, body=log, exit_status=3)
    failed = (await daily.judged())["failed"]
    assert failed.status is Status.CRITICAL and "exit status 3" in failed.summary
    assert failed.evidence[-1] == "pg_dump: error: connection refused"
    assert len(failed.evidence) == 10 and "step 0 ok" not in failed.evidence
    await daily.clock.advance(HOUR)
    await daily.ping()
    assert await daily.failing() == set()


async def test_a_run_started_and_not_ended_within_max_runtime_is_late(daily: Watched) -> None:
    await daily.ping(PingKind.START, rid="run-1")
    await daily.clock.advance(2 * HOUR)
    assert await daily.failing() == set()
    await daily.clock.advance(60)
    assert await daily.failing() == {"late"}
    await daily.ping(PingKind.SUCCESS, rid="other-run")  # another run's end does not end this one
    assert "late" in await daily.failing()
    await daily.ping(PingKind.SUCCESS, rid="run-1")
    assert await daily.failing() == set()


async def test_a_restart_keeps_pings_and_judges_a_slot_missed_while_down(tmp_path: Path, fake_clock: FakeClock) -> None:
    watched = await Watched.open(tmp_path / "state.db", fake_clock, schedule="0 3 * * *", grace="30m")
    await watched.check.start()
    await fake_clock.advance(7 * HOUR + 5 * 60)  # the fake clock starts at 19:00Z: now 02:05 the next day
    await watched.ping(PingKind.START)
    await fake_clock.advance(60)
    await watched.ping(PingKind.FAIL, body="disk full")
    await watched.restart()
    await watched.check.start()
    assert (await watched.judged())["failed"].evidence == ("disk full",)
    await watched.ping()
    # Down from 03:00 to 04:00 the next day: the 03:00 slot passed unpinged while it was down.
    await watched.restart()
    await fake_clock.advance(25 * HOUR)
    await watched.check.start()
    assert await watched.failing() == {"missed"}


async def test_a_restart_during_a_run_still_finds_it_late(tmp_path: Path, fake_clock: FakeClock) -> None:
    watched = await Watched.open(tmp_path / "state.db", fake_clock, period="1h", max_runtime="10m")
    await watched.check.start()
    await watched.ping(PingKind.START)
    await watched.restart()
    await fake_clock.advance(11 * 60)
    await watched.check.start()
    assert await watched.failing() == {"late"}


@pytest.mark.parametrize(
    ("last_run", "next_run"),
    [
        # 01:30 local every day in London; the clocks jump from 01:00 to 02:00 on 2026-03-29,
        # so that day has no 01:30: cron runs the skipped job at the jump, 02:00 BST = 01:00 UTC.
        (datetime(2026, 3, 28, 1, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), datetime(2026, 3, 30, 0, 30, tzinfo=UTC)),
        # The clocks go back at 01:00 UTC on 2026-10-25: 01:30 BST (00:30 UTC) runs once.
        (datetime(2026, 10, 24, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC)),
    ],
)
def test_cron_slots_follow_the_time_zone_across_a_dst_change(last_run: datetime, next_run: datetime) -> None:
    config = HeartbeatConfig.model_validate(
        {"type": "heartbeat", "schedule": "30 1 * * *", "tz": "Europe/London", "grace": "10m"}
    )
    assert expected_by(config, last_run) == next_run


async def test_a_missed_slot_across_the_spring_change_is_judged_at_the_real_slot(
    tmp_path: Path
) -> None:
    clock = FakeClock(start=datetime(2026, 3, 28, 1, 31, tzinfo=UTC))
    watched = await Watched.open(tmp_path / "state.db", clock, schedule="30 1 * * *", tz="Europe/London", grace="10m")
    await watched.check.start()
    await watched.ping()  # the 28 March run, 01:31 UTC (GMT)
    await clock.advance(timedelta(hours=23, minutes=38).total_seconds())  # 29 March 01:09 UTC
    assert await watched.failing() == set()
    await clock.advance(2 * 60)  # 01:11 UTC: the slot (02:00 BST, the jump) plus 10 minutes has passed
    assert await watched.failing() == {"missed"}


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({}, "exactly one of period or schedule"),
        ({"period": "1h", "schedule": "0 3 * * *"}, "exactly one of period or schedule"),
        ({"schedule": "0 25 * * *"}, "invalid cron expression"),
        ({"schedule": "0 3 * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_config_mistakes_are_explained(keys: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        HeartbeatConfig.model_validate({"type": "heartbeat", **keys})


async def test_the_ledger_keeps_the_last_pings_of_each_check_across_restarts(daily: Watched) -> None:
    for n in range(PINGS_KEPT + 10):
        await daily.clock.advance(60)
        await daily.ping(body=f"run {n}")
    await daily.restart()
    state = await daily.ledger.recent("backup")
    assert state is not None and len(state.pings) == PINGS_KEPT
    assert state.pings[0].body == "run 10" and state.pings[-1].body == f"run {PINGS_KEPT + 9}"
