"""Retention (issue 10, failure 2's soak: the outbox and incidents were never pruned and the
SQLite file grew 4.7 MB a minute): a bounded soak on a fake clock, and pruning itself."""

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.model import Finding, Severity, Status
from monitor.sqlite_file import SqliteFile
from monitor.sqlite_store import SqliteStore
from monitor.store import OutboxEntry, StateChange, prune_expired
from tests.fakes import FakeClock
from tests.incident_harness import Harness, http_check, write_config
from tests.store_seed import create_incident

CHECKS = 40
RUN_EVERY_SECONDS = 7
RETENTION_MINUTES = 5


def store_size(store: SqliteStore) -> int:
    path = store.file.path
    return sum(file.stat().st_size for file in path.parent.glob(f"{path.name}*"))


def rows(store: SqliteStore, table: str) -> int:
    return int(store.file._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_the_outbox_and_the_file_stop_growing_once_the_retention_window_is_full(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    checks = "".join(http_check(f"c{i}", failure_threshold="1", success_threshold="1") for i in range(CHECKS))
    extra = f'retention = "{RETENTION_MINUTES}m"\n[alerting]\nstorm_threshold = 1000\n'
    harness = await Harness.open(write_config(tmp_path, checks, extra, sinks=("slack", "email")), fake_clock)
    down = Finding("down", Status.CRITICAL, "down", Severity.P3)
    up = Finding("down", Status.OK, "up")
    samples: dict[int, tuple[int, int, int]] = {}
    try:
        for run in range(1, 30 * 60 // RUN_EVERY_SECONDS + 1):
            await fake_clock.advance(RUN_EVERY_SECONDS)
            for i in range(CHECKS):
                # Each check fails for 6 runs then passes for 6, out of step with the others:
                # an incident opens and resolves every 84 s per check, never flapping.
                failing = (run + i) // 6 % 2 == 0
                await harness.observe(f"c{i}", [down if failing else up])
            await harness.pipeline.tick()
            if run * RUN_EVERY_SECONDS % 60 < RUN_EVERY_SECONDS:
                await prune_expired(harness.store, fake_clock.now() - timedelta(minutes=RETENTION_MINUTES))
                minute = run * RUN_EVERY_SECONDS // 60
                store = harness.store
                samples[minute] = (rows(store, "outbox"), rows(store, "incidents"), store_size(store))
    finally:
        await harness.close()

    delivered = len(harness.sinks["slack"].received)
    assert delivered > 1000, "the soak should deliver a steady flow"
    outbox_10, incidents_10, size_10 = samples[10]
    outbox_29, incidents_29, size_29 = samples[29]
    # Past the retention window, what is kept is what the last 5 minutes produced.
    assert outbox_29 <= outbox_10 * 1.15 and incidents_29 <= incidents_10 * 1.15
    assert size_29 <= size_10 * 1.15
    assert outbox_29 < delivered


def test_prune_keeps_pending_deliveries_open_incidents_and_everything_recent(tmp_path: Path) -> None:
    from tests.alerting_helpers import incident

    clock = FakeClock()
    with SqliteFile(tmp_path / "state.db") as store:
        old = create_incident(store, incident(id=0, state="resolved", resolved_at=clock.now()))
        still_open = create_incident(store, incident(id=0))
        for name in ("sent", "dead", "pending"):
            store.enqueue([OutboxEntry(f"{name}-1", "slack", old.id, "initial", "{}", clock.now())])
            if name != "pending":
                store.finish(f"{name}-1", "slack", name, clock.now())  # type: ignore[arg-type]
        later = clock.now() + timedelta(days=31)
        fresh = create_incident(store, incident(id=0, state="resolved", resolved_at=later))

        assert store.prune(later - timedelta(days=30), limit=10) == 2

        assert [d.notification_id for d in store._deliveries("ORDER BY seq", ())] == ["pending-1"]
        assert {i.id for i in store.recent_incidents()} == {still_open.id, fresh.id}


async def test_a_failing_run_that_changes_nothing_writes_nothing(
    tmp_path: Path, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, http_check("api", failure_threshold="1"), sinks=("log",))
    harness = await Harness.open(config, fake_clock)
    writes: list[int] = []
    record = harness.store.record

    async def counted(change: StateChange) -> object:
        writes.extend(incident.id for incident in change.opened + change.saved)
        return await record(change)

    monkeypatch.setattr(harness.store, "record", counted)
    down = Finding("down", Status.CRITICAL, "HTTP 503", Severity.P2)
    try:
        await harness.observe("api", [down])
        opened = len(writes)
        await harness.observe("api", *([[down]] * 20))
        await harness.pipeline.tick()  # what further failing runs changed is written each tick
        assert len(writes) == opened
        await harness.observe("api", [Finding("down", Status.CRITICAL, "HTTP 502", Severity.P2)])
        await harness.pipeline.tick()
        assert len(writes) == opened + 1
        (incident,) = await harness.store.open_incidents()
        assert (incident.summary, incident.failing_runs) == ("HTTP 502", 22)
    finally:
        await harness.close()
