"""History on PostgreSQL: the tables of monitor/history/pg_schema.py, reached through the
daemon's one `asyncpg.Pool` (never a pool or connection of its own).

A flush's buckets are turned into one column per field in a worker thread, then sent as
arrays in pieces of PIECE_ROWS buckets, in one transaction: `unnest` makes them rows again, `GROUP BY`
adds up those of the same bucket (each minute is sent once for its hour and once for its day), and
the upsert adds them to what is kept, as the SQLite store does."""

import asyncio
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from monitor.history.aggregate import RESOLUTIONS, Batch, Bucket, Resolution, Uptime

PIECE_ROWS = 2000
"""Rows per upsert statement: encoding one piece's arrays keeps the event loop a few ms at most."""
_SUMS = "SUM(runs)::bigint, SUM(good)::bigint, SUM(latency_sum), MAX(latency_max), SUM(held_runs)::bigint," \
        " SUM(held_good)::bigint"


def _upsert(table: str) -> str:
    return (
        f"INSERT INTO {table} AS kept (check_id, start, runs, good, latency_sum, latency_max, held_runs, held_good)"
        f" SELECT check_id, start, {_SUMS}"
        " FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::bigint[], $5::float8[], $6::float8[],"
        " $7::bigint[], $8::bigint[])"
        " AS r (check_id, start, runs, good, latency_sum, latency_max, held_runs, held_good)"
        " GROUP BY check_id, start"
        " ON CONFLICT (check_id, start) DO UPDATE SET runs = kept.runs + excluded.runs,"
        " good = kept.good + excluded.good, latency_sum = kept.latency_sum + excluded.latency_sum,"
        " latency_max = GREATEST(kept.latency_max, excluded.latency_max),"
        " held_runs = kept.held_runs + excluded.held_runs, held_good = kept.held_good + excluded.held_good"
    )


Piece = list[tuple[int | float, ...]]
"""One upsert's arguments: a column per field."""


def _pieces(batches: Sequence[Batch], ids: dict[str, int]) -> list[tuple[str, Piece]]:
    """Each table's upserts: the batches' buckets of its resolution, PIECE_ROWS at a time, a column per field."""
    pieces = []
    for batch in batches:
        check_ids = [ids[name] for name in batch.checks]
        for resolution in RESOLUTIONS:
            buckets = list(batch.buckets(check_ids, resolution))
            for start in range(0, len(buckets), PIECE_ROWS):
                columns = list(zip(*buckets[start : start + PIECE_ROWS], strict=True))
                pieces.append((f"history_{resolution.name}", columns))
    return pieces


class PostgresHistoryStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._ids: dict[str, int] = {}

    async def write(self, batches: Sequence[Batch], now: datetime) -> None:
        names = {name for batch in batches for name in batch.checks}
        async with self._pool.acquire() as connection:
            ids = await self._ids_of(connection, names)
            pieces = await asyncio.to_thread(_pieces, batches, ids)
            async with connection.transaction():
                for table, arguments in pieces:
                    await connection.execute(_upsert(table), *arguments)
                for resolution in RESOLUTIONS:
                    cutoff = resolution.floor((now - resolution.kept).timestamp())
                    await connection.execute(f"DELETE FROM history_{resolution.name} WHERE start < $1", cutoff)

    async def buckets(self, check: str, resolution: Resolution, since: int) -> dict[int, Bucket]:
        # Keyed by start first: one check's buckets are looked up start by start (PostgreSQL 15
        # has no skip scan), from the first at or after `since` to the last the table holds.
        table = f"history_{resolution.name}"
        records = await self._pool.fetch(
            "SELECT start, runs, good, latency_sum, latency_max, held_runs, held_good"
            f" FROM generate_series(GREATEST($2, (SELECT min(start) FROM {table})),"
            f" (SELECT max(start) FROM {table}), $3) AS slot (start) JOIN {table} USING (start)"
            " WHERE check_id = (SELECT id FROM history_checks WHERE name = $1)",
            check, resolution.ceil(since), resolution.seconds,
        )
        return {start: Bucket(*values) for start, *values in records}

    async def buckets_of_all(self, resolution: Resolution, since: int) -> dict[str, dict[int, Bucket]]:
        return await self._by_check(
            "SELECT c.name, h.start, h.runs, h.good, h.latency_sum, h.latency_max, h.held_runs, h.held_good"
            f" FROM history_{resolution.name} h JOIN history_checks c ON c.id = h.check_id WHERE h.start >= $1",
            since,
        )

    async def totals(self, resolution: Resolution, since: int) -> dict[str, Uptime]:
        records = await self._pool.fetch(
            "SELECT c.name, SUM(h.runs)::bigint, SUM(h.good)::bigint, SUM(h.held_runs)::bigint,"
            f" SUM(h.held_good)::bigint FROM history_{resolution.name} h JOIN history_checks c ON c.id = h.check_id"
            " WHERE h.start >= $1 GROUP BY c.name",
            since,
        )
        return {name: Uptime(*sums) for name, *sums in records}

    async def coarser(self, resolution: Resolution, step: int, since: int) -> dict[str, dict[int, Bucket]]:
        return await self._by_check(
            f"SELECT c.name, h.start - h.start % $2 AS slot, {_SUMS}"
            f" FROM history_{resolution.name} h JOIN history_checks c ON c.id = h.check_id"
            " WHERE h.start >= $1 GROUP BY c.name, slot",
            since, int(step),
        )

    async def close(self) -> None:
        """The pool is the daemon's: it closes it."""

    async def _by_check(self, query: str, *arguments: object) -> dict[str, dict[int, Bucket]]:
        """Every check's buckets (name, start, then the bucket's fields), read PIECE_ROWS at a time
        through a cursor and made into buckets in a worker thread: the status page of 10,000 checks
        reads 900,000 day buckets, which would hold the event loop for seconds at once."""
        found: dict[str, dict[int, Bucket]] = {}
        async with self._pool.acquire() as connection, connection.transaction():
            cursor = await connection.cursor(query, *arguments)
            while records := await cursor.fetch(PIECE_ROWS):
                await asyncio.to_thread(_add_buckets, found, records)
        return found

    async def _ids_of(self, connection: asyncpg.Connection, names: set[str]) -> dict[str, int]:
        missing = [name for name in names if name not in self._ids]
        if missing:
            await connection.execute(
                "INSERT INTO history_checks (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING", missing
            )
            for check_id, name in await connection.fetch(
                "SELECT id, name FROM history_checks WHERE name = ANY($1::text[])", missing
            ):
                self._ids[name] = check_id
        return self._ids


def _add_buckets(found: dict[str, dict[int, Bucket]], records: list[asyncpg.Record]) -> None:
    for name, start, *values in records:
        found.setdefault(name, {})[start] = Bucket(*values)
