"""Outbox claims, what lets replicas share the outbox: on PostgreSQL a pending row is claimed for
a while by one replica with a token, the others find it busy until the claim runs out, only the
token's holder records the outcome, and a claim under a stale epoch takes nothing. SQLite has
one writer: its claims are always granted and change nothing."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from monitor.postgres_store import PostgresStore
from monitor.sqlite_store import SqliteStore
from monitor.store import UNSHARED_CLAIM, StaleEpoch, StateChange
from tests.fakes import START
from tests.postgres.cluster_helpers import fresh_database
from tests.postgres.pg_server import Server
from tests.store_contract.rows import incident, pages

NOTIFICATION, SINK = "n-1-opened", "slack"


@pytest.fixture
async def db_and_store(pg_server: Server) -> AsyncIterator[tuple[asyncpg.Connection, PostgresStore]]:
    async with fresh_database(pg_server) as dsn:
        store = await PostgresStore.open(dsn, max_connections=4)
        db = await asyncpg.connect(dsn, timeout=10)
        await db.execute(
            "INSERT INTO cluster_lease (name, leader, epoch, elected_at, expires_at)"
            " VALUES ('leader', 'a', 3, now(), now() + interval '1 hour')"
        )
        await store.record(StateChange(opened=[incident(1)], outbox=pages(1), epoch=3))
        try:
            yield db, store
        finally:
            await db.close()
            await store.close()


async def state_of(store: PostgresStore) -> str:
    [delivery] = [d for d in await store.deliveries_for(1) if d.sink == SINK]
    return delivery.state


async def test_one_replica_claims_a_row_the_others_find_it_busy_until_the_claim_runs_out(db_and_store) -> None:
    db, store = db_and_store
    mine = await store.claim(NOTIFICATION, SINK, "a", 30.0, epoch=3)
    assert mine.outcome == "claimed" and mine.token is not None
    assert (await store.claim(NOTIFICATION, SINK, "b", 30.0)).outcome == "busy"
    renewed = await store.claim(NOTIFICATION, SINK, "a", 30.0, epoch=3, token=mine.token)
    assert renewed == mine, "the holder renews its own claim, same token"

    await db.execute("UPDATE outbox SET claimed_until = now() - interval '1 second'")  # its holder died
    theirs = await store.claim(NOTIFICATION, SINK, "b", 30.0)
    assert theirs.outcome == "claimed" and theirs.token != mine.token

    await store.finish(NOTIFICATION, SINK, "sent", START, token=mine.token)  # the old holder, too late
    assert await state_of(store) == "pending"
    await store.record_attempt(NOTIFICATION, SINK, "timed out", token=mine.token)
    assert [d.attempts for d in await store.deliveries_for(1) if d.sink == SINK] == [0]
    await store.finish(NOTIFICATION, SINK, "sent", START + timedelta(seconds=1), token=theirs.token)
    assert await state_of(store) == "sent"
    assert (await store.claim(NOTIFICATION, SINK, "a", 30.0, epoch=3)).outcome == "finished"


async def test_a_claim_under_a_stale_epoch_takes_nothing(db_and_store) -> None:
    db, store = db_and_store
    await db.execute("UPDATE cluster_lease SET epoch = 4, leader = 'b'")  # another replica was elected
    with pytest.raises(StaleEpoch, match="epoch 3"):
        await store.claim(NOTIFICATION, SINK, "a", 30.0, epoch=3)
    assert (await store.claim(NOTIFICATION, SINK, "b", 30.0, epoch=4)).outcome == "claimed"


async def test_two_replicas_claiming_every_row_at_once_never_claim_the_same_one(db_and_store) -> None:
    _, store = db_and_store
    rows = [(d.notification_id, d.sink) for d in await store.pending_deliveries()]

    async def claim_all(holder: str) -> set[tuple[str, str]]:
        claims = await asyncio.gather(*(store.claim(n, s, holder, 30.0) for n, s in rows))
        return {row for row, claim in zip(rows, claims, strict=True) if claim.outcome == "claimed"}

    first, second = await asyncio.gather(claim_all("a"), claim_all("b"))
    assert first.isdisjoint(second) and first | second == set(rows)


async def test_on_sqlite_every_claim_is_granted(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "state.db")
    try:
        await store.record(StateChange(opened=[incident(1)], outbox=pages(1)))
        assert await store.claim(NOTIFICATION, SINK, "a", 30.0) == UNSHARED_CLAIM
        assert await store.claim(NOTIFICATION, SINK, "b", 30.0) == UNSHARED_CLAIM
        await store.finish(NOTIFICATION, SINK, "sent", START, token=None)
        assert [d.state for d in await store.deliveries_for(1) if d.sink == SINK] == ["sent"]
        assert await store.oldest_pending() == START
    finally:
        await store.close()
