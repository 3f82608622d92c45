"""The daemon keeps history where its state is: on PostgreSQL when the state store has a pool
(as the PostgreSQL state store has, inside the GuardedStore or not), else in the state file."""

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from monitor.history.aggregate import DAY, Accumulator, Bucket
from monitor.history.pg_schema import HISTORY_BY_START, HISTORY_TABLES
from monitor.history.pg_store import PostgresHistoryStore
from monitor.history.store import SqliteHistoryFile, SqliteHistoryStore
from monitor.history.stores import open_history_store
from monitor.migrations import MIGRATIONS
from tests.history.conftest import fresh_database
from tests.postgres.pg_server import Server


async def test_a_state_store_with_a_pool_keeps_history_in_its_database(pg_server: Server, tmp_path: Path) -> None:
    async with fresh_database(pg_server) as pool:
        for state_store in (SimpleNamespace(pool=pool), SimpleNamespace(inner=SimpleNamespace(pool=pool))):
            store = open_history_store(state_store, tmp_path / "state.db")
            assert isinstance(store, PostgresHistoryStore)
        accumulator = Accumulator()
        accumulator.record("api", 86400 * 100, True, 0.1)
        await store.write([accumulator.take()], datetime.fromtimestamp(86400 * 100, UTC))
        assert (await store.buckets("api", DAY, 0))[86400 * 100].runs == 1
        assert await pool.fetchval("SELECT count(*) FROM history_day") == 1
    assert not (tmp_path / "state.db").exists()


async def test_any_other_state_store_keeps_history_in_the_state_file(tmp_path: Path) -> None:
    store = open_history_store(SimpleNamespace(inner=object()), tmp_path / "state.db")
    assert isinstance(store, SqliteHistoryStore)
    await store.close()
    assert (tmp_path / "state.db").exists()


DAY_START = 86400 * 100
KEPT = Bucket(runs=10, good=9, latency_sum=1.0, latency_max=0.5)


def test_a_state_file_keyed_by_check_first_keeps_its_history_when_keyed_by_time_first(tmp_path: Path) -> None:
    """Migration 7 re-keys the file's history tables by start first (a flush then writes a few
    pages, not one per check); the buckets written before it are all still read."""
    path = tmp_path / "state.db"
    db = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS:
        if migration.version < 7:
            for statement in migration.statements:
                db.execute(statement)
    db.execute("PRAGMA user_version = 6")
    db.execute("INSERT INTO history_checks (id, name) VALUES (1, 'api')")
    db.execute("INSERT INTO history_day VALUES (1, ?, 10, 9, 1.0, 0.5, 0, 0)", (DAY_START,))
    db.close()
    history = SqliteHistoryFile(path)
    assert history.buckets("api", DAY, 0) == {DAY_START: KEPT}
    history.close()
    with sqlite3.connect(path) as db:
        key = sorted((position, name) for _, name, *_, position in db.execute("PRAGMA table_info(history_day)"))
    assert [name for position, name in key if position] == ["start", "check_id"]


async def test_a_database_keyed_by_check_first_keeps_its_history_when_keyed_by_time_first(pg_server: Server) -> None:
    async with fresh_database(pg_server, (HISTORY_TABLES,)) as pool:
        await pool.execute("INSERT INTO history_checks (name) VALUES ('api')")
        await pool.execute(
            "INSERT INTO history_day SELECT id, $1, 10, 9, 1.0, 0.5, 0, 0 FROM history_checks", DAY_START
        )
        for statement in HISTORY_BY_START.statements:
            await pool.execute(statement)
        assert await PostgresHistoryStore(pool).buckets("api", DAY, 0) == {DAY_START: KEPT}
        key = await pool.fetchval(
            "SELECT array_agg(a.attname ORDER BY array_position(i.indkey, a.attnum)) FROM pg_index i"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = 'history_day'::regclass AND i.indisprimary"
        )
        assert key == ["start", "check_id"]
