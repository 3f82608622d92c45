"""What only the PostgreSQL store does: it refuses a change decided under a stale leadership
epoch, it rides out a lost connection and a server restart without being reopened, and it
says where it failed without the DSN's password."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from structlog.testing import capture_logs

from monitor.postgres_store import APPLICATION_NAME, PostgresStore, Reconnect, display_dsn
from monitor.store import StaleEpoch, StateChange, StoreError, StoreUnavailable
from tests.net import closed_port
from tests.postgres.cluster_helpers import fresh_database
from tests.postgres.pg_server import APP, Cluster, Server
from tests.store_contract.rows import incident, pages

pytestmark = pytest.mark.usefixtures("pg_server")


@pytest.fixture
async def dsn(pg_server: Server) -> AsyncIterator[str]:
    async with fresh_database(pg_server) as dsn:
        yield dsn


@pytest.fixture
async def store(dsn: str) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(dsn, max_connections=4)
    yield opened
    await opened.close()


async def test_a_change_decided_under_a_stale_epoch_writes_nothing(dsn: str, store: PostgresStore) -> None:
    db = await asyncpg.connect(dsn, timeout=10)
    try:
        await db.execute(
            "INSERT INTO cluster_lease (name, leader, epoch, elected_at, expires_at)"
            " VALUES ('leader', 'a', 3, now(), now() + interval '1 hour')"
        )
        await store.record(StateChange(opened=[incident(1)], outbox=pages(1), epoch=3))
        with pytest.raises(StaleEpoch, match="epoch 2"):
            await store.record(StateChange(opened=[incident(2, check="db")], outbox=pages(2), epoch=2))
        await db.execute("UPDATE cluster_lease SET expires_at = now() - interval '1 second'")
        with pytest.raises(StaleEpoch):  # the lease ran out: no epoch is current
            await store.record(StateChange(opened=[incident(3, check="tls")], epoch=3))
        await db.execute("UPDATE cluster_lease SET leader = NULL, expires_at = now() + interval '1 hour'")
        with pytest.raises(StaleEpoch):  # the leader resigned
            await store.record(StateChange(opened=[incident(4, check="tcp")], epoch=3))
    finally:
        await db.close()
    assert [i.id for i in await store.recent_incidents()] == [1]
    assert {d.incident_id for d in await store.pending_deliveries()} == {1}


async def test_a_statement_cut_off_by_pg_terminate_backend_is_tried_again_on_a_new_connection(
    dsn: str, store: PostgresStore, pg_server: Server
) -> None:
    await store.record(StateChange(opened=[incident(1)]))
    admin = await asyncpg.connect(pg_server.dsn(pg_server.admin_user, pg_server.admin_password, dsn.rsplit("/", 1)[1]))
    try:
        with capture_logs() as logs:
            async with admin.transaction():  # the store's read waits behind this lock while its backend is terminated
                await admin.execute("LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE")
                reading = asyncio.create_task(store.open_incidents())
                await _wait_for_waiting_backend(admin)
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                    APPLICATION_NAME,
                )
            assert [i.id for i in await reading] == [1]
    finally:
        await admin.close()
    assert [entry["event"] for entry in logs] == ["state_store.retrying"]


async def _wait_for_waiting_backend(admin: asyncpg.Connection) -> None:
    for _ in range(200):
        if await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
            APPLICATION_NAME,
        ):
            return
        await asyncio.sleep(0.02)
    pytest.fail("the store's read never waited on the lock")


async def test_a_stopped_server_is_reported_after_the_retries_and_the_store_works_again_once_it_is_back(
    throwaway_cluster: Cluster,
) -> None:
    dsn = throwaway_cluster.server.role_dsn(APP)
    brief = await PostgresStore.open(dsn, reconnect=Reconnect(give_up_after=0.5))
    patient = await PostgresStore.open(dsn, reconnect=Reconnect(give_up_after=30.0))
    try:
        await brief.record(StateChange(opened=[incident(1)], outbox=pages(1)))
        throwaway_cluster.stop()
        with pytest.raises(StoreUnavailable) as failed:
            await brief.record(StateChange(opened=[incident(2, check="db")]))
        message = str(failed.value)
        assert message.startswith(f"state store {brief.display}: ") and "\n" not in message
        assert APP.password not in message and "@" not in message  # no user:password@
        # Having given up once, the store tries each call once until one gets through.
        with capture_logs() as logs, pytest.raises(StoreUnavailable):
            await brief.open_incidents()
        assert logs == []

        # A call made while the server is down waits for it (within give_up_after) and succeeds.
        with capture_logs() as logs:
            writing = asyncio.create_task(patient.record(StateChange(opened=[incident(3, check="tls")])))
            await asyncio.sleep(0.3)
            assert not writing.done()
            await asyncio.to_thread(throwaway_cluster.start)
            await writing
        assert {entry["event"] for entry in logs} == {"state_store.retrying"}

        # Neither store was reopened; the change that failed was not written.
        assert [i.id for i in await brief.open_incidents()] == [1, 3]
        assert {d.incident_id for d in await brief.pending_deliveries()} == {1}
    finally:
        await brief.close()
        await patient.close()


async def test_a_store_that_cannot_be_opened_says_where_and_why_without_the_password(pg_server: Server) -> None:
    wrong = pg_server.dsn(APP.name, "not-the-Pa55word")
    with pytest.raises(StoreError) as refused:
        await PostgresStore.open(wrong)
    message = str(refused.value)
    assert message.startswith(f"cannot open the state store {pg_server.host}:{pg_server.port}/hm_test_app: ")
    assert "password authentication failed" in message
    assert "not-the-Pa55word" not in message and "\n" not in message

    nowhere = f"postgresql://{APP.name}:{APP.password}@127.0.0.1:{closed_port()}/hm_test_app"
    with pytest.raises(StoreError, match=r"cannot open the state store 127\.0\.0\.1:\d+/hm_test_app: "):
        await PostgresStore.open(nowhere, reconnect=Reconnect(timeout=2.0))


def test_the_display_of_a_dsn_keeps_only_host_port_and_database() -> None:
    assert display_dsn("postgresql://hm:s3cret@db.internal:6432/state?sslmode=require&password=x") == (
        "db.internal:6432/state"
    )
    assert display_dsn("postgres://hm:s3cret@db.internal/state") == "db.internal:5432/state"
    assert display_dsn("postgresql://[::1]/state") == "[::1]:5432/state"
