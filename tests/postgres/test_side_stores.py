"""The contract of the daemon's other state (context journal, Slack threads, heartbeat pings,
cluster membership), each test run on the SQLite state file and on a fresh PostgreSQL database
holding only SIDE_TABLES and the cluster's tables: what the ping endpoint, heartbeat checks, Slack app mode and the
context feature rely on, the same on both."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import pytest

from monitor.cluster import sql as cluster_sql
from monitor.config import MonitorSection
from monitor.context.changes import Change
from monitor.context.journal import CHANGES_KEPT
from monitor.pg_migrations import PG_MIGRATIONS
from monitor.pg_side_schema import SIDE_TABLES
from monitor.ping_ledgers import PostgresPingLedger
from monitor.pings import BODY_LIMIT, PINGS_KEPT, Ping, PingKind
from monitor.side_stores import SideStores, open_side_stores
from monitor.slack_threads import SlackThread
from monitor.store import StoreUnavailable
from tests.postgres.cluster_helpers import fresh_database
from tests.postgres.pg_server import Server

START = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


async def create_side_tables(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection, connection.transaction():
        for statement in (*PG_MIGRATIONS[0].statements, *SIDE_TABLES.statements):  # migration 1 holds the cluster's
            await connection.execute(statement)


class Backend:
    """One store's side stores, and how to take them away (the file closed, the pool closed)."""

    def __init__(self, stores: SideStores, pool: asyncpg.Pool | None, path: Path) -> None:
        self.stores, self.pool, self.path = stores, pool, path

    async def reopen(self) -> SideStores:
        """Another process (or replica) on the same store: fresh stores, nothing cached."""
        return await open_side_stores(MonitorSection(state_path=str(self.path)), SimpleNamespace(pool=self.pool))  # type: ignore[arg-type]

    async def take_away(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        await self.stores.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path, pg_server: Server) -> AsyncIterator[Backend]:
    path = tmp_path / "state.db"
    if request.param == "sqlite":
        made = Backend(await open_side_stores(MonitorSection(state_path=str(path)), object()), None, path)  # type: ignore[arg-type]
        yield made
        await made.stores.close()
        return
    async with fresh_database(pg_server) as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4)
        try:
            await create_side_tables(pool)
            yield Backend(await open_side_stores(MonitorSection(), SimpleNamespace(pool=pool)), pool, path)  # type: ignore[arg-type]
        finally:
            await pool.close()


def change(deployment: str, minutes: float = 0, service: str = "s-web", status: str = "SUCCESS") -> Change:
    return Change(at=START + timedelta(minutes=minutes), service_id=service, deployment_id=deployment,
                  event="Deployment.deployed", status=status, service_name="web", commit_hash=f"{deployment}-c0ffee",
                  commit_message="fix checkout", author="alice", branch="main")


# The context journal


async def test_a_deployment_is_new_once_whatever_its_later_statuses(backend: Backend) -> None:
    journal = backend.stores.journal
    assert await journal.record_change(change("d-1", status="BUILDING")) is True
    assert await journal.record_change(change("d-1", 2, status="SUCCESS")) is False
    assert await journal.record_change(change("d-2", 3)) is True


async def test_two_webhooks_of_one_deployment_at_once_make_it_new_once(backend: Backend) -> None:
    other = await backend.reopen()
    try:
        firsts = await asyncio.gather(*(
            stores.journal.record_change(change("d-9", minutes, status=status))
            for stores, minutes, status in ((backend.stores, 0, "BUILDING"), (other, 0.1, "DEPLOYING")) * 4
        ))
    finally:
        await other.close()
    assert sorted(firsts) == [False] * 7 + [True]


async def test_changes_come_newest_first_by_service_and_time_with_every_field(backend: Backend) -> None:
    journal = backend.stores.journal
    for deployment, minutes, service in (("d-1", 0, "s-web"), ("w-1", 5, "s-worker"), ("d-2", 10, "s-web"),
                                         ("d-3", 20, "s-web")):
        await journal.record_change(change(deployment, minutes, service))
    web = await journal.changes(START, service_id="s-web")
    assert [c.deployment_id for c in web] == ["d-3", "d-2", "d-1"]
    assert web[-1] == change("d-1"), "every field, and the time as an aware UTC moment"
    window = await journal.changes(START + timedelta(minutes=5), until=START + timedelta(minutes=10))
    assert [c.deployment_id for c in window] == ["d-2", "w-1"], "both ends included"
    assert [c.deployment_id for c in await journal.changes(START, limit=2)] == ["d-3", "d-2"]


async def test_changes_older_than_the_kept_window_are_forgotten(backend: Backend) -> None:
    journal = backend.stores.journal
    await journal.record_change(change("d-old"))
    later = (CHANGES_KEPT + timedelta(minutes=1)).total_seconds() / 60
    await journal.record_change(change("d-new", later))
    assert [c.deployment_id for c in await journal.changes(START - timedelta(days=1))] == ["d-new"]
    assert await journal.record_change(change("d-old", later)) is True, "forgotten, so new again"


async def test_recorded_actions_wait_in_order_until_applied(backend: Backend) -> None:
    journal = backend.stores.journal
    for incident_id, minutes, text in ((7, 0, "restarted web"), (3, 1, "rolled back web to d-1"), (7, 2, "redeployed")):
        await journal.record_action(incident_id, START + timedelta(minutes=minutes), "alice", text)
    waiting = await journal.unapplied_actions()
    assert [(a.incident_id, a.at, a.by, a.text) for a in waiting] == [
        (7, START, "alice", "restarted web"),
        (3, START + timedelta(minutes=1), "alice", "rolled back web to d-1"),
        (7, START + timedelta(minutes=2), "alice", "redeployed"),
    ]
    await journal.mark_action_applied(waiting[1].seq)
    assert [a.text for a in await journal.unapplied_actions()] == ["restarted web", "redeployed"]
    other = await backend.reopen()
    try:
        assert [a.text for a in await other.journal.unapplied_actions()] == ["restarted web", "redeployed"]
    finally:
        await other.close()


# Slack threads


async def test_each_incident_has_its_thread_per_sink_and_a_new_parent_replaces_it(backend: Backend) -> None:
    threads = backend.stores.threads
    assert await threads.thread("slack-oncall", 7) is None
    await threads.remember("slack-oncall", 7, SlackThread("C1", "1700000000.000001"))
    await threads.remember("slack-oncall", 8, SlackThread("C1", "1700000000.000002"))
    await threads.remember("slack-team", 7, SlackThread("C2", "1700000000.000003"))
    assert await threads.thread("slack-oncall", 7) == SlackThread("C1", "1700000000.000001")
    assert await threads.thread("slack-team", 7) == SlackThread("C2", "1700000000.000003")
    assert await threads.thread("slack-team", 8) is None
    await threads.remember("slack-oncall", 7, SlackThread("C9", "1700000000.000009"))
    other = await backend.reopen()
    try:
        assert await other.threads.thread("slack-oncall", 7) == SlackThread("C9", "1700000000.000009")
    finally:
        await other.close()


# Heartbeat pings


async def test_a_check_is_watched_from_its_first_watch_on(backend: Backend) -> None:
    pings = backend.stores.pings
    assert await pings.recent("backup") is None
    await pings.watch("backup", START)
    await pings.watch("backup", START + timedelta(hours=1))
    state = await pings.recent("backup")
    assert state is not None and state.watching_since == START and state.pings == () and state.last is None


async def test_pings_come_oldest_first_and_only_the_last_ones_are_kept(backend: Backend) -> None:
    pings = backend.stores.pings
    await pings.watch("backup", START)
    await pings.watch("other", START)
    await pings.record(Ping("other", START, PingKind.SUCCESS))
    for n in range(PINGS_KEPT + 5):
        kind = PingKind.START if n % 2 == 0 else PingKind.FAIL
        at = START + timedelta(minutes=n)
        await pings.record(Ping("backup", at, kind, n % 2 or None, f"run-{n // 2}", f"log {n}"))
        state = await pings.recent("backup")
        assert state is not None and state.last is not None and state.last.body == f"log {n}", "seen at once"
    state = await pings.recent("backup")
    assert state is not None and len(state.pings) == PINGS_KEPT
    assert [p.body for p in state.pings] == [f"log {n}" for n in range(5, PINGS_KEPT + 5)]
    assert state.pings[0] == Ping("backup", START + timedelta(minutes=5), PingKind.FAIL, 1, "run-2", "log 5")
    other = await pings.recent("other")
    assert other is not None and len(other.pings) == 1, "the other check's pings are not pruned"


async def test_a_full_log_is_kept_byte_for_byte(backend: Backend) -> None:
    pings = backend.stores.pings
    await pings.watch("backup", START)
    body = ("line é ✓ \t\r\n" * BODY_LIMIT)[:BODY_LIMIT // 2]
    await pings.record(Ping("backup", START, PingKind.FAIL, 2, None, body))
    other = await backend.reopen()
    try:
        state = await other.pings.recent("backup")
    finally:
        await other.close()
    assert state is not None and state.pings[0].body == body


async def test_a_replica_sees_the_pings_another_replica_received(pg_server: Server) -> None:
    async with fresh_database(pg_server) as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4)
        try:
            await create_side_tables(pool)
            leader, standby = PostgresPingLedger(pool), PostgresPingLedger(pool)
            await leader.watch("backup", START)
            assert (await leader.recent("backup")).pings == ()  # type: ignore[union-attr]
            for minutes in (1, 2):
                await standby.record(Ping("backup", START + timedelta(minutes=minutes), PingKind.SUCCESS))
                state = await leader.recent("backup")
                assert state is not None and state.last is not None
                assert state.last.at == START + timedelta(minutes=minutes)
            async with pool.acquire() as connection:  # the oldest pruned by a replica: gone here too
                await connection.execute("DELETE FROM heartbeat_pings WHERE at = $1", START + timedelta(minutes=1))
            assert [p.at for p in (await leader.recent("backup")).pings] == [START + timedelta(minutes=2)]  # type: ignore[union-attr]
        finally:
            await pool.close()


# Cluster membership


async def test_an_empty_store_shows_no_leader_and_no_members(backend: Backend) -> None:
    view = await backend.stores.membership.view(START)
    assert (view.leader, view.members, view.epoch) == (None, (), 0)
    assert view.mode == ("single" if backend.pool is None else "replicated")


async def test_the_replicas_electors_wrote_are_listed(pg_server: Server) -> None:
    async with fresh_database(pg_server) as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            await create_side_tables(pool)
            async with pool.acquire() as connection:
                await connection.execute(cluster_sql.ENSURE_LEASE_ROW, cluster_sql.LEASE_NAME)
                await connection.execute(cluster_sql.ELECT, cluster_sql.LEASE_NAME, "replica-a", 30.0)
                await connection.fetchval(cluster_sql.HEARTBEAT, cluster_sql.LEASE_NAME, "replica-a", START,
                                          "leader", 1)
            stores = await open_side_stores(MonitorSection(), SimpleNamespace(pool=pool))  # type: ignore[arg-type]
            view = await stores.membership.view(datetime.now(UTC))
            assert (view.leader, view.epoch, [m.node for m in view.members]) == ("replica-a", 1, ["replica-a"])
        finally:
            await pool.close()


# Failure


async def test_a_store_that_went_away_raises_store_unavailable(backend: Backend) -> None:
    await backend.take_away()
    with pytest.raises(StoreUnavailable):
        await backend.stores.journal.record_change(change("d-1"))
    with pytest.raises(StoreUnavailable):
        await backend.stores.pings.record(Ping("backup", START, PingKind.SUCCESS))
    with pytest.raises(StoreUnavailable):
        await backend.stores.threads.thread("slack-oncall", 7)
    with pytest.raises(StoreUnavailable):
        await backend.stores.membership.view(START)
