"""What one postgres check run costs, beside a bare `SELECT 1` round trip in the same run.

A throwaway PostgreSQL on 127.0.0.1 gets 150 idle application connections, 100 small
tables and an indexed error_logs table of 10,000 rows (none in the last hour, so the run
is healthy); then the check runs N times with table sizes measured every run (full run) and
with them skipped (most runs, between two table_size_interval), and a plain connection
runs `SELECT 1` N times. Prints medians, statements per run and the ratios.

    .venv/bin/python bench/bench_postgres.py [--runs 200]
"""

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg

from checks.base import CheckContext
from checks.postgres import PostgresCheck
from monitor.clock import SystemClock
from monitor.metrics import MonitorMetrics

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ is not installed; the checkout has it
from tests.postgres.pg_server import APP, APP_DATABASE, MONITOR, Cluster, Server, provision

OPEN_CONNECTIONS = 150
TABLES = 100
WARMUP_RUNS = 5


async def median_ms(runs: int, operation: Callable[[], Awaitable[object]]) -> float:
    for _ in range(WARMUP_RUNS):
        await operation()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await operation()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def open_connections(server: Server, count: int) -> list[asyncpg.Connection]:
    connections: list[asyncpg.Connection] = []
    while len(connections) < count:
        batch = min(20, count - len(connections))
        connections += await asyncio.gather(*(asyncpg.connect(server.role_dsn(APP)) for _ in range(batch)))
    return connections


async def create_tables(server: Server) -> None:
    app = await asyncpg.connect(server.role_dsn(APP))
    try:
        for n in range(TABLES):
            await app.execute(f"CREATE TABLE bench_{n} AS SELECT g AS id FROM generate_series(1, {n * 10}) g")
        await app.execute(
            "CREATE TABLE error_logs (id bigserial, created_at timestamptz NOT NULL, message text);"
            "INSERT INTO error_logs (created_at, message)"
            " SELECT now() - interval '2 hours' - g * interval '1 minute', 'boom' FROM generate_series(1, 10000) g;"
            f"CREATE INDEX ON error_logs (created_at); ANALYZE error_logs; GRANT SELECT ON error_logs TO {MONITOR.name}"
        )
    finally:
        await app.close()


async def measure_check(check: PostgresCheck, runs: int) -> tuple[float, float]:
    """Median milliseconds of one run, and queries (round trips) sent per run."""
    before = check.round_trips
    milliseconds = await median_ms(runs, check.run)
    return milliseconds, (check.round_trips - before) / (runs + WARMUP_RUNS)


async def bench(server: Server, runs: int) -> None:
    await create_tables(server)
    crowd = await open_connections(server, OPEN_CONNECTIONS)
    baseline = await asyncpg.connect(server.role_dsn(MONITOR))
    async with aiohttp.ClientSession() as http:
        context = CheckContext(http, SystemClock(), MonitorMetrics())
        settings = {"type": "postgres", "dsn": server.role_dsn(MONITOR), "timeout": "10s"}
        full = PostgresCheck(
            "full", PostgresCheck.Config.model_validate(settings | {"table_size_interval": "0s"}), context
        )
        steady = PostgresCheck("steady", PostgresCheck.Config.model_validate(settings | {"top_tables": 0}), context)
        try:
            await full.start()
            await steady.start()
            findings = await full.run()
            select_1 = await median_ms(runs, lambda: baseline.fetchval("SELECT 1"))
            full_ms, full_statements = await measure_check(full, runs)
            steady_ms, steady_statements = await measure_check(steady, runs)
            version = await baseline.fetchval("SHOW server_version")
            used = await baseline.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            )
        finally:
            await full.aclose()
            await steady.aclose()
            await baseline.close()
            await asyncio.gather(*(connection.close() for connection in crowd))
    print(f"PostgreSQL {version} on 127.0.0.1, {used} client connections open, {TABLES} tables in {APP_DATABASE}")
    print(f"check findings: {'; '.join(f'{f.code} {f.status.label}: {f.summary}' for f in findings)}")
    print(f"median of {runs} runs each (after {WARMUP_RUNS} warm-up runs):")
    print(f"  {'SELECT 1 round trip':<38}  {select_1:8.3f} ms   1 query")
    print(report("postgres check, full run", full_ms, full_statements, select_1))
    print(report("postgres check, table sizes skipped", steady_ms, steady_statements, select_1))


def report(label: str, milliseconds: float, statements: float, baseline_ms: float) -> str:
    return (
        f"  {label:<38}  {milliseconds:8.3f} ms  {statements:2.0f} queries"
        f"   {milliseconds / baseline_ms:5.1f}x SELECT 1"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs of each operation (default 200)")
    runs = parser.parse_args().runs
    cluster = Cluster(max_connections=OPEN_CONNECTIONS + 50).create()
    try:
        provision(cluster.server)
        asyncio.run(bench(cluster.server, runs))
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
