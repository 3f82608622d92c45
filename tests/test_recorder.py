"""The recorder's promise: a batch of decisions is written whole or not at all, the changes a
failing store refused are written together once it takes writes again, a check's
half-counted streak survives a restart, and every change carries the leadership epoch."""

import sqlite3
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.metrics import MonitorMetrics
from monitor.model import Incident, Severity
from monitor.pipeline import Pipeline
from monitor.runner import RunResult
from monitor.sqlite_file import SqliteFile
from monitor.sqlite_store import SqliteStore
from monitor.store import CheckMemory, OutboxEntry, RecordOutcome, StateChange, StoreUnavailable
from monitor.store_guard import GuardedStore
from tests.fakes import START, FakeClock
from tests.incident_harness import DOWN, Harness, http_check, write_config
from tests.store_doubles import FillableStore


class Crash(Exception):
    pass


FAIL_ON_OUTBOX = (
    "CREATE TRIGGER fail_on_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
)


def rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_a_crash_half_way_through_a_record_leaves_nothing_of_the_decision(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    path = write_config(tmp_path, http_check("api", failure_threshold="1"), sinks=("oncall",))
    harness = await Harness.open(path, fake_clock)
    state = Path(harness.config.monitor.state_path)
    with sqlite3.connect(state) as db:
        db.execute(FAIL_ON_OUTBOX)

    real_record = harness.pipeline.store.inner.record

    async def crash_half_way(change: StateChange) -> RecordOutcome:
        try:
            return await real_record(change)  # the incident row goes in before the outbox insert fails
        except StoreUnavailable as failed:
            raise Crash("the process died in the middle of the record") from failed

    harness.pipeline.store.inner.record = crash_half_way  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await harness.observe("api", [DOWN])

    assert (rows(state, "incidents"), rows(state, "outbox"), rows(state, "check_memories")) == (0, 0, 0)
    assert harness.sinks["oncall"].received == [], "nothing is sent of a decision that was not recorded"
    await harness.close()

    with sqlite3.connect(state) as db:
        db.execute("DROP TRIGGER fail_on_outbox")
    await harness.start()  # the daemon after the crash: it decides again from what was recorded
    await harness.observe("api", [DOWN])
    assert [r.notification.incident.id for r in harness.sinks["oncall"].received] == [1]
    assert rows(state, "incidents") == 1 and rows(state, "outbox") == 1
    await harness.close()


async def test_changes_a_full_store_refused_are_written_together_in_order_once_it_has_room(
    tmp_path: Path, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = MonitorMetrics()
    inner = await FillableStore.open(tmp_path / "state.db")
    store = GuardedStore(inner, metrics, fake_clock)
    incident = Incident(id=1, check="api", code="down", severity=Severity.P1, opened_at=START, summary="down",
                        impact="all")
    monkeypatch.setattr(FillableStore, "full", True)
    await store.record(StateChange(opened=[incident], memories=[CheckMemory("api", "{}")]))
    incident.state, incident.resolved_at = "resolved", START
    entry = OutboxEntry("1:resolution", "oncall", 1, "resolution", "{}", START)
    await store.record(StateChange(saved=[incident], outbox=[entry]))
    assert store.problem is not None and await store.open_incidents() == []
    assert metrics.state_store_errors.labels(operation="record")._value.get() == 2, "each refused write counted"

    monkeypatch.setattr(FillableStore, "full", False)
    await store.retry()
    assert store.problem is None
    await store.close()
    with SqliteFile(tmp_path / "state.db") as file:
        assert [(i.id, i.state) for i in file.recent_incidents()] == [(1, "resolved")]
        assert [d.notification_id for d in file.pending_deliveries()] == ["1:resolution"]
        assert [memory.check for memory in file.check_memories()] == ["api"]


async def test_a_restart_keeps_a_check_at_one_of_two_failures(tmp_path: Path, fake_clock: FakeClock) -> None:
    path = write_config(tmp_path, http_check("api", failure_threshold="2"), sinks=("oncall",))
    harness = await Harness.open(path, fake_clock)
    await harness.observe("api", [DOWN])
    await harness.restart()
    await harness.observe("api", [DOWN])
    assert [r.kind.value for r in harness.sinks["oncall"].received] == ["initial"]
    (incident,) = harness.manager.open_incidents
    assert incident.failing_runs == 2
    await harness.close()


async def test_every_change_carries_the_epoch_the_pipeline_is_given(tmp_path: Path, fake_clock: FakeClock) -> None:
    config = load_config(write_config(tmp_path, http_check("api", failure_threshold="1"), sinks=("oncall",)))
    inner = await SqliteStore.open(config.monitor.state_path)
    epochs: list[int | None] = []
    record = inner.record

    async def recorded(change: StateChange) -> RecordOutcome:
        epochs.append(change.epoch)
        return await record(change)

    inner.record = recorded  # type: ignore[method-assign]
    store = GuardedStore(inner, MonitorMetrics(), fake_clock)
    pipeline = await Pipeline.open(config, store, {}, MonitorMetrics(), fake_clock, None, epoch=lambda: 7)
    await pipeline.on_result(RunResult("api", [DOWN], 0.0))
    await pipeline.acknowledge(1, "alice", "")
    assert epochs == [7, 7]
    await pipeline.close(grace=0)
    await store.close()


async def test_an_incident_another_writer_opened_first_is_adopted_and_not_paged_twice(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    path = write_config(tmp_path, http_check("api", failure_threshold="1"), sinks=("oncall",))
    harness = await Harness.open(path, fake_clock)
    theirs = Incident(id=5, check="api", code="down", severity=Severity.P1, opened_at=START, summary="down",
                      impact="all", paged_at=START)
    with SqliteFile(harness.config.monitor.state_path) as other_writer:
        other_writer.record(StateChange(opened=[theirs]))

    await harness.observe("api", [DOWN])

    assert harness.sinks["oncall"].received == [], "the other writer pages it"
    assert [incident.id for incident in harness.manager.open_incidents] == [5]
    assert [incident.id for incident in await harness.store.open_incidents()] == [5]
    assert not Path(harness.config.monitor.incident_log).exists()
    await harness.close()
