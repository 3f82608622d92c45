"""The daemon's other state, beside the incidents of the state store: the context journal, Slack
threads, heartbeat pings and cluster membership. On PostgreSQL when the state store is (they
share its pool, so replicas share them: any replica may take a ping or a Railway webhook, a
standby answers the read API), else in the SQLite state file, on one connection of their own."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from alerting.slack.threads import PostgresThreads, SqliteThreads, ThreadStore
from checks.heartbeat.pings import PingLedger, PostgresPingLedger, SqlitePingLedger
from monitor.cluster.single import SqliteMembership
from monitor.cluster.view import ClusterMembers, PostgresMembership
from monitor.config import MonitorSection
from monitor.context.journal import Journal, PostgresJournal, SqliteJournal
from monitor.sqlite_thread import SqliteThread
from monitor.store import StateStore
from monitor.store_factory import open_state_store


@dataclass(frozen=True, slots=True)
class SideStores:
    journal: Journal
    threads: ThreadStore
    pings: PingLedger
    membership: ClusterMembers
    file: SqliteThread | None = None
    """The SQLite connection they share (None on PostgreSQL), closed with them."""

    async def close(self) -> None:
        if self.file is not None:
            await self.file.close()


async def open_side_stores(monitor: MonitorSection, state_store: StateStore) -> SideStores:
    """`state_store` is the store itself, not its guard: PostgreSQL when it has a pool (the
    schema is its migrations'), else the SQLite file at `state_path` (StoreError when it
    cannot be opened)."""
    pool = getattr(state_store, "pool", None)
    if isinstance(pool, asyncpg.Pool):
        return SideStores(PostgresJournal(pool), PostgresThreads(pool), PostgresPingLedger(pool),
                          PostgresMembership(pool))
    file = await SqliteThread.open(monitor.state_path)
    return SideStores(SqliteJournal(file), SqliteThreads(file), SqlitePingLedger(file), SqliteMembership(file), file)


@asynccontextmanager
async def side_stores_of(monitor: MonitorSection) -> AsyncIterator[SideStores]:
    """For a CLI command: the configured state store's side stores, closed (with the store) after."""
    store = await open_state_store(monitor)
    try:
        side = await open_side_stores(monitor, store)
        try:
            yield side
        finally:
            await side.close()
    finally:
        await store.close()
