"""History on PostgreSQL: the tables of monitor/history/pg_schema.py, reached through the
daemon's one `asyncpg.Pool` (never a pool or connection of its own).

A flush's rows are turned into one column list per field in a worker thread, then sent as
arrays in pieces of PIECE_ROWS rows, in one transaction: `unnest` makes them rows again, `GROUP BY` adds up those
of the same bucket (the daemon sends one row per minute for each hour and day), and the upsert
adds them to what is kept, as the SQLite store does."""

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from monitor.history.aggregate import RESOLUTIONS, Bucket, Resolution, Row, Uptime

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


Piece = tuple[list[int] | list[float], ...]
"""One upsert's arguments: a column list per field."""


@dataclass(slots=True)
class _Columns:
    """One resolution's rows, field by field."""

    checks: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)
    good: list[int] = field(default_factory=list)
    latency_sum: list[float] = field(default_factory=list)
    latency_max: list[float] = field(default_factory=list)
    held_runs: list[int] = field(default_factory=list)
    held_good: list[int] = field(default_factory=list)

    def add(self, row: Row) -> None:
        bucket = row.bucket
        self.checks.append(row.check)
        self.starts.append(row.start)
        self.runs.append(bucket.runs)
        self.good.append(bucket.good)
        self.latency_sum.append(bucket.latency_sum)
        self.latency_max.append(bucket.latency_max)
        self.held_runs.append(bucket.held_runs)
        self.held_good.append(bucket.held_good)


    def pieces(self, ids: dict[str, int], size: int) -> Iterator[Piece]:
        """The columns as upsert arguments (check ids for names), `size` rows a piece."""
        check_ids = [ids[name] for name in self.checks]
        columns = (check_ids, self.starts, self.runs, self.good, self.latency_sum, self.latency_max,
                   self.held_runs, self.held_good)
        for start in range(0, len(check_ids), size):
            yield tuple(column[start : start + size] for column in columns)


def _columns(rows: Iterable[Row]) -> dict[str, _Columns]:
    by_table: dict[str, _Columns] = {}
    for row in rows:
        table = f"history_{row.resolution.name}"
        columns = by_table.get(table)
        if columns is None:
            columns = by_table[table] = _Columns()
        columns.add(row)
    return by_table


def _pieces(by_table: dict[str, _Columns], ids: dict[str, int]) -> list[tuple[str, Piece]]:
    return [(table, piece) for table, columns in by_table.items() for piece in columns.pieces(ids, PIECE_ROWS)]


class PostgresHistoryStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._ids: dict[str, int] = {}

    async def write(self, rows: Iterable[Row], now: datetime) -> None:
        by_table = await asyncio.to_thread(_columns, rows)
        names = await asyncio.to_thread(lambda: {name for columns in by_table.values() for name in columns.checks})
        async with self._pool.acquire() as connection:
            ids = await self._ids_of(connection, names)
            pieces = await asyncio.to_thread(_pieces, by_table, ids)
            async with connection.transaction():
                for table, arguments in pieces:
                    await connection.execute(_upsert(table), *arguments)
                for resolution in RESOLUTIONS:
                    cutoff = resolution.floor((now - resolution.kept).timestamp())
                    await connection.execute(f"DELETE FROM history_{resolution.name} WHERE start < $1", cutoff)

    async def buckets(self, check: str, resolution: Resolution, since: int) -> dict[int, Bucket]:
        records = await self._pool.fetch(
            f"SELECT start, runs, good, latency_sum, latency_max, held_runs, held_good FROM history_{resolution.name}"
            " WHERE check_id = (SELECT id FROM history_checks WHERE name = $1) AND start >= $2",
            check, since,
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
