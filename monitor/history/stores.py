"""Which history store the daemon uses: PostgreSQL when its state store is on PostgreSQL (it
has a `pool`, directly or inside the GuardedStore), else the SQLite state file at `state_path`."""

from pathlib import Path

from monitor.history.pg_store import PostgresHistoryStore
from monitor.history.store import HistoryStore, SqliteHistoryStore


def open_history_store(state_store: object, state_path: str | Path) -> HistoryStore:
    pool = getattr(state_store, "pool", None) or getattr(getattr(state_store, "inner", None), "pool", None)
    if pool is not None:
        return PostgresHistoryStore(pool)
    return SqliteHistoryStore(state_path)
