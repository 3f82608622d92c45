"""The PostgreSQL store behind PgBouncer in transaction pooling mode, where consecutive
statements of one client may run on different server connections: with `pgbouncer = true`
(no prepared statement cache) every call works; without it, calls fail."""

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from monitor.postgres_store import PostgresStore
from monitor.store import StateChange, StoreUnavailable
from tests.postgres.cluster_helpers import fresh_database
from tests.postgres.pg_server import APP, PostgresUnavailableError, Server
from tests.postgres.pgbouncer import PgBouncer
from tests.store_contract.rows import incident, pages

CLIENTS = 6
"""Client connections of the store's pool, sharing PgBouncer's three server connections."""


@pytest.fixture
def pgbouncer(pg_server: Server) -> Iterator[PgBouncer]:
    try:
        bouncer = PgBouncer(pg_server, APP).start()
    except PostgresUnavailableError as exc:
        pytest.fail(f"no PgBouncer to test against: {exc}", pytrace=False)
    yield bouncer
    bouncer.stop()


@pytest.fixture
async def through_pgbouncer(pg_server: Server, pgbouncer: PgBouncer) -> AsyncIterator[str]:
    async with fresh_database(pg_server, migrated=False) as direct:
        yield pgbouncer.dsn(direct.rsplit("/", 1)[1])


async def workload(store: PostgresStore) -> None:
    await asyncio.gather(*(
        store.record(StateChange(opened=[incident(n, check=f"c{n}")], outbox=pages(n))) for n in range(1, 61)
    ))  # fmt: skip
    for _ in range(5):
        await asyncio.gather(*(store.get_incident(n) for n in range(1, 61)), store.pending_deliveries())


async def test_with_pgbouncer_true_every_call_works_through_transaction_pooling(through_pgbouncer: str) -> None:
    store = await PostgresStore.open(through_pgbouncer, pgbouncer=True, max_connections=CLIENTS)
    try:
        await workload(store)
        assert len(await store.open_incidents()) == 60
        assert len(await store.pending_deliveries()) == 180
    finally:
        await store.close()


async def test_without_it_prepared_statements_break_behind_transaction_pooling(through_pgbouncer: str) -> None:
    store = await PostgresStore.open(through_pgbouncer, pgbouncer=True)  # migrated first
    await store.close()
    store = await PostgresStore.open(through_pgbouncer, pgbouncer=False, max_connections=CLIENTS)
    try:
        with pytest.raises(StoreUnavailable, match="prepared statement"):
            await workload(store)
    finally:
        await store.close()
