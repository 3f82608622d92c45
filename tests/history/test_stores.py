"""The daemon keeps history where its state is: on PostgreSQL when the state store has a pool
(as the PostgreSQL state store has, inside the GuardedStore or not), else in the state file."""

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from monitor.history.aggregate import DAY, Accumulator
from monitor.history.pg_store import PostgresHistoryStore
from monitor.history.store import SqliteHistoryStore
from monitor.history.stores import open_history_store
from tests.history.conftest import fresh_database
from tests.postgres.pg_server import Server


async def test_a_state_store_with_a_pool_keeps_history_in_its_database(pg_server: Server, tmp_path: Path) -> None:
    async with fresh_database(pg_server) as pool:
        for state_store in (SimpleNamespace(pool=pool), SimpleNamespace(inner=SimpleNamespace(pool=pool))):
            store = open_history_store(state_store, tmp_path / "state.db")
            assert isinstance(store, PostgresHistoryStore)
        accumulator = Accumulator()
        accumulator.record("api", 86400 * 100, True, 0.1)
        await store.write(accumulator.drain(), datetime.fromtimestamp(86400 * 100, UTC))
        assert (await store.buckets("api", DAY, 0))[86400 * 100].runs == 1
        assert await pool.fetchval("SELECT count(*) FROM history_day") == 1
    assert not (tmp_path / "state.db").exists()


async def test_any_other_state_store_keeps_history_in_the_state_file(tmp_path: Path) -> None:
    store = open_history_store(SimpleNamespace(inner=object()), tmp_path / "state.db")
    assert isinstance(store, SqliteHistoryStore)
    await store.close()
    assert (tmp_path / "state.db").exists()
