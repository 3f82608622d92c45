"""What the database holds: application error rows, table sizes, transaction ID age; and a
locked table that must not hang the check."""

from collections.abc import AsyncIterator

import asyncpg
import pytest

from checks.base import CheckContext, Severity, Status
from monitor.runner import run_check
from tests.postgres.helpers import AppSessions, MakeCheck, by_code


@pytest.fixture
async def error_logs(admin: asyncpg.Connection) -> AsyncIterator[None]:
    """The playbook's error_logs: three rows in the last hour, one older."""
    await admin.execute(
        "CREATE TABLE error_logs (id serial, created_at timestamptz NOT NULL, message text);"
        "INSERT INTO error_logs (created_at, message) VALUES"
        " (now() - interval '2 hours', 'old'), (now() - interval '5 minutes', 'boom'),"
        " (now() - interval '1 minute', 'boom'), (now(), 'boom');"
        "GRANT SELECT ON error_logs TO hm_test_monitor"
    )
    yield
    await admin.execute("DROP TABLE error_logs")


@pytest.fixture
async def ops_errors(admin: asyncpg.Connection) -> AsyncIterator[None]:
    """An error table whose schema-qualified, mixed-case names need quoting."""
    await admin.execute(
        'CREATE SCHEMA ops; CREATE TABLE ops."AppErrors" ("logged at" timestamptz);'
        'INSERT INTO ops."AppErrors" VALUES (now());'
        'GRANT USAGE ON SCHEMA ops TO hm_test_monitor; GRANT SELECT ON ops."AppErrors" TO hm_test_monitor'
    )
    yield
    await admin.execute("DROP SCHEMA ops CASCADE")


@pytest.fixture
async def sized_tables(admin: asyncpg.Connection) -> AsyncIterator[None]:
    await admin.execute(
        "CREATE TABLE size_big AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 20000) g;"
        "CREATE TABLE size_mid AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 5000) g;"
        "CREATE TABLE size_small AS SELECT 1 AS id, 'x' AS pad;"
        "GRANT ALL ON size_big, size_mid, size_small TO hm_test_app"
    )
    yield
    await admin.execute("DROP TABLE size_big, size_mid, size_small")


async def test_recent_error_rows_are_reported(make_check: MakeCheck, error_logs: None) -> None:
    check = await make_check(error_table="error_logs")

    findings = by_code(await check.run())

    finding = findings["error_logs"]
    assert (finding.status, finding.severity) == (Status.WARNING, Severity.P3)
    assert finding.summary == "3 rows in error_logs in the last 1h (threshold 0)"
    assert finding.evidence[0].startswith("latest: ")


async def test_error_rows_within_the_threshold_are_fine(make_check: MakeCheck, error_logs: None) -> None:
    check = await make_check(error_table="error_logs", error_threshold=3, error_window="10m")

    assert "error_logs" not in by_code(await check.run())


async def test_schema_qualified_error_table_with_odd_names(make_check: MakeCheck, ops_errors: None) -> None:
    check = await make_check(error_table="ops.AppErrors", error_time_column="logged at")

    finding = by_code(await check.run())["error_logs"]

    assert finding.summary == "1 row in ops.AppErrors in the last 1h (threshold 0)"


async def test_missing_error_table_is_one_clear_unknown(make_check: MakeCheck) -> None:
    check = await make_check(error_table="error_logs")

    findings = await check.run()

    error_findings = [finding for finding in findings if finding.code == "error_logs"]
    assert len(error_findings) == 1
    assert error_findings[0].status is Status.UNKNOWN
    assert error_findings[0].summary.startswith("error table error_logs does not exist")


async def test_error_table_unreadable_by_the_monitor_names_the_grant(
    make_check: MakeCheck, admin: asyncpg.Connection, error_logs: None
) -> None:
    await admin.execute("REVOKE SELECT ON error_logs FROM hm_test_monitor")
    check = await make_check(error_table="error_logs")

    finding = by_code(await check.run())["error_logs"]

    assert finding.status is Status.UNKNOWN
    assert "GRANT SELECT ON error_logs TO hm_test_monitor" in finding.summary


async def test_empty_error_table_setting_turns_the_check_off(make_check: MakeCheck) -> None:
    check = await make_check(error_table="")

    assert set(by_code(await check.run())) == {"unreachable"}


async def test_largest_tables_are_exported_and_stale_ones_dropped(
    make_check: MakeCheck, admin: asyncpg.Connection, context: CheckContext, sized_tables: None
) -> None:
    check = await make_check(top_tables=2, table_size_interval="0s")

    await check.run()
    first = table_sizes(context)
    await admin.execute("INSERT INTO size_small SELECT g, repeat('x', 200) FROM generate_series(1, 50000) g")
    await check.run()
    second = table_sizes(context)

    assert first["public.size_big"] == await admin.fetchval("SELECT pg_total_relation_size('size_big')")
    assert first["public.size_mid"] is not None
    assert first["public.size_small"] is None
    assert second["public.size_mid"] is None, "a table that left the top 2 loses its series"
    assert second["public.size_small"] > second["public.size_big"]


def table_sizes(context: CheckContext) -> dict[str, float | None]:
    sample = context.metrics.registry.get_sample_value
    names = ("public.size_big", "public.size_mid", "public.size_small")
    return {name: sample("health_monitor_pg_table_size_bytes", {"check": "db", "table": name}) for name in names}


async def test_transaction_id_age_over_wraparound_percent_is_p2(
    make_check: MakeCheck, admin: asyncpg.Connection
) -> None:
    oldest_age = await admin.fetchval("SELECT max(age(datfrozenxid)) FROM pg_database")
    check = await make_check(wraparound_percent=100 * (oldest_age - 1) / 2**31)

    finding = by_code(await check.run())["wraparound"]

    assert (finding.status, finding.severity) == (Status.WARNING, Severity.P2)
    assert "wraparound limit" in finding.summary
    assert finding.values["xid_age"] >= oldest_age


@pytest.mark.parametrize("pgbouncer", [False, True], ids=["direct", "pgbouncer-mode"])
async def test_a_table_locked_exclusively_does_not_hang_the_check(
    make_check: MakeCheck, app_sessions: AppSessions, sized_tables: None, pgbouncer: bool
) -> None:
    locker = await app_sessions.connect()
    check = await make_check(
        pgbouncer=pgbouncer, statement_timeout="30s", lock_timeout="200ms", top_tables=5, table_size_interval="0s"
    )

    async with locker.transaction():  # released before the fixture drops the table
        await locker.execute("LOCK TABLE size_mid IN ACCESS EXCLUSIVE MODE")
        result = await run_check(check, timeout=5)

    assert by_code(result.findings)["unreachable"].status is Status.OK
