"""Can the monitor reach the database, and how full is it? Down, wrong password and no slots left."""

import asyncio
import math

import asyncpg

from checks.base import CheckContext, Severity, Status
from tests.postgres.helpers import AppSessions, MakeCheck, by_code
from tests.postgres.pg_server import MONITOR, Cluster, Server


async def usable_slots(admin: asyncpg.Connection) -> int:
    row = await admin.fetchrow(
        "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
    )
    return int(row[0])


async def client_sessions(admin: asyncpg.Connection) -> int:
    return int(await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"))


async def test_healthy_server_is_ok_with_slot_usage_and_metrics(
    make_check: MakeCheck, admin: asyncpg.Connection, pg_server: Server, context: CheckContext
) -> None:
    check = await make_check()

    findings = by_code(await check.run())

    sessions = await client_sessions(admin)
    usable = await usable_slots(admin)
    max_connections = int(await admin.fetchval("SHOW max_connections"))
    assert set(findings) == {"unreachable"}
    assert findings["unreachable"].status is Status.OK
    where = f"{pg_server.host}:{pg_server.port}/hm_test_app"
    assert findings["unreachable"].summary == f"connected to {where} as hm_test_monitor, {sessions}/{usable} slots used"
    sample = context.metrics.registry.get_sample_value
    assert sample("health_monitor_pg_max_connections", {"check": "db"}) == max_connections
    assert sample("health_monitor_pg_connections", {"check": "db", "state": "active"}) >= 1
    assert sample("health_monitor_pg_long_queries", {"check": "db"}) == 0
    await check.aclose()
    assert sample("health_monitor_pg_max_connections", {"check": "db"}) is None, "a closed check leaves no series"


async def test_wrong_password_is_unreachable_p1_and_never_shows_the_password(
    make_check: MakeCheck, pg_server: Server
) -> None:
    password = "Wr0ng-Pa55-XYZ"
    check = await make_check(dsn=pg_server.dsn(MONITOR.name, password))

    findings = await check.run()

    assert [(f.code, f.status, f.severity) for f in findings] == [("unreachable", Status.CRITICAL, Severity.P1)]
    [finding] = findings
    assert finding.summary == f"{pg_server.host}:{pg_server.port}/hm_test_app unreachable: authentication failed"
    assert "SQLSTATE 28P01" in finding.evidence[0]
    assert password not in repr(findings)


async def test_server_down_is_unreachable_p1_and_ok_again_once_restarted(
    make_check: MakeCheck, throwaway_cluster: Cluster, context: CheckContext
) -> None:
    await asyncio.to_thread(throwaway_cluster.stop)
    check = await make_check(dsn=throwaway_cluster.server.role_dsn(MONITOR))  # start() with the server down

    down = by_code(await check.run())
    await asyncio.to_thread(throwaway_cluster.start)
    up = by_code(await check.run())
    max_connections = context.metrics.registry.get_sample_value("health_monitor_pg_max_connections", {"check": "db"})
    await asyncio.to_thread(throwaway_cluster.stop)
    down_again = by_code(await check.run())

    assert (down["unreachable"].status, down["unreachable"].severity) == (Status.CRITICAL, Severity.P1)
    assert down["unreachable"].summary.endswith("unreachable: connection refused")
    assert up["unreachable"].status is Status.OK
    assert max_connections == 20
    assert set(down_again) == {"unreachable"}
    assert (down_again["unreachable"].status, down_again["unreachable"].severity) == (Status.CRITICAL, Severity.P1)
    assert context.metrics.registry.get_sample_value("health_monitor_pg_max_connections", {"check": "db"}) is None


async def test_connection_usage_crosses_warning_then_critical(
    make_check: MakeCheck, app_sessions: AppSessions, admin: asyncpg.Connection
) -> None:
    check = await make_check()
    usable = await usable_slots(admin)
    used = await client_sessions(admin)

    for _ in range(math.ceil(usable * 0.8) - used):
        await app_sessions.connect()
    warning = by_code(await check.run())["connections_high"]
    for _ in range(math.ceil(usable * 0.9) - math.ceil(usable * 0.8)):
        await app_sessions.connect()
    critical = by_code(await check.run())["connections_high"]

    assert (warning.status, warning.severity) == (Status.WARNING, Severity.P3)
    assert warning.summary.startswith(f"{math.ceil(usable * 0.8)}/{usable} connection slots in use (")
    assert warning.summary.endswith("%, warning at 80%)")
    assert (critical.status, critical.severity) == (Status.CRITICAL, Severity.P2)
    assert critical.summary.endswith("%, critical at 90%)")
    assert "client sessions by state: " in critical.evidence[0]


async def test_no_slot_left_is_connections_high_p1_for_running_and_new_checks(
    make_check: MakeCheck, app_sessions: AppSessions
) -> None:
    running = await make_check()
    await fill_every_slot(app_sessions)

    held = by_code(await running.run())
    fresh = by_code(await (await make_check(name="fresh")).run())

    assert (held["connections_high"].status, held["connections_high"].severity) == (Status.CRITICAL, Severity.P1)
    assert held["connections_high"].summary.startswith("no connection slots left: ")
    assert held["unreachable"].status is Status.OK, "the held connection still works"
    assert set(fresh) == {"connections_high"}
    assert (fresh["connections_high"].status, fresh["connections_high"].severity) == (Status.CRITICAL, Severity.P1)
    assert "too many connections" in fresh["connections_high"].summary
    assert "SQLSTATE 53300" in fresh["connections_high"].evidence[0]


async def fill_every_slot(app_sessions: AppSessions) -> None:
    """Opens application connections until the server refuses one (SQLSTATE 53300)."""
    for _ in range(1000):
        try:
            await app_sessions.connect()
        except asyncpg.TooManyConnectionsError:
            return
    raise AssertionError("the server never refused a connection")
