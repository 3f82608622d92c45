"""Sessions an on-call engineer must hear about: long queries, idle transactions, lock waits,
and a monitoring role that cannot see them."""

from collections.abc import AsyncIterator

import asyncpg
import pytest

from checks.base import CheckContext, Severity, Status
from tests.postgres.helpers import AppSessions, MakeCheck, by_code, run_until
from tests.postgres.pg_server import PLAIN, Server


@pytest.fixture
async def accounts(admin: asyncpg.Connection) -> AsyncIterator[str]:
    await admin.execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int);"
        "INSERT INTO accounts VALUES (1, 100), (2, 200); GRANT ALL ON accounts TO hm_test_app"
    )
    yield "accounts"
    await admin.execute("DROP TABLE accounts")


async def test_long_query_is_reported_with_its_pid_and_redacted_text(
    make_check: MakeCheck, app_sessions: AppSessions, context: CheckContext
) -> None:
    app = await app_sessions.connect(application="billing-worker")
    app_sessions.start(app.fetch("SELECT 'tok_secret_4242' AS token, pg_sleep(60), 31337 AS customer"))
    check = await make_check(long_query="1s", long_query_critical="1h")

    findings = await run_until(check, lambda found: "long_queries" in found, "the sleeping query to be reported")

    finding = findings["long_queries"]
    assert (finding.status, finding.severity) == (Status.WARNING, Severity.P3)
    assert f"(pid {app.get_server_pid()})" in finding.summary
    [line] = finding.evidence
    assert line.startswith(f"pid {app.get_server_pid()}, user hm_test_app, application billing-worker, running ")
    assert line.endswith("state active, query: SELECT ? AS token, pg_sleep(?), ? AS customer")
    assert "4242" not in line and "31337" not in line
    assert context.metrics.registry.get_sample_value("health_monitor_pg_long_queries", {"check": "db"}) == 1


async def test_long_query_beyond_long_query_critical_is_p2(make_check: MakeCheck, app_sessions: AppSessions) -> None:
    app = await app_sessions.connect()
    app_sessions.start(app.fetch("SELECT pg_sleep(60)"))
    check = await make_check(long_query="1s", long_query_critical="2s")

    findings = await run_until(
        check,
        lambda found: "long_queries" in found and found["long_queries"].status is Status.CRITICAL,
        "the query to run past long_query_critical",
    )

    assert findings["long_queries"].severity is Severity.P2


async def test_the_monitors_own_query_is_never_reported(make_check: MakeCheck, admin: asyncpg.Connection) -> None:
    check = await make_check(long_query="0s", long_query_critical="0s")

    findings = by_code(await check.run())

    own_pids = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE application_name = 'health-monitor'")
    assert len(own_pids) == 1, "the check holds one connection, named health-monitor"
    evidence = findings["long_queries"].evidence if "long_queries" in findings else ()
    assert not any(line.startswith(f"pid {own_pids[0]['pid']},") for line in evidence)


async def test_session_idle_in_transaction_is_reported(make_check: MakeCheck, app_sessions: AppSessions) -> None:
    app = await app_sessions.connect()
    transaction = app.transaction()
    await transaction.start()
    await app.execute("SELECT 'pin 1234' AS note")
    check = await make_check(idle_in_transaction="1s")

    findings = await run_until(check, lambda found: "idle_in_transaction" in found, "the idle transaction")

    finding = findings["idle_in_transaction"]
    assert (finding.status, finding.severity) == (Status.WARNING, Severity.P3)
    assert finding.summary.startswith("1 session idle in a transaction longer than 1s")
    [line] = finding.evidence
    assert line.startswith(f"pid {app.get_server_pid()}, user hm_test_app, application app-under-test, idle for ")
    assert line.endswith("state idle in transaction, last query: SELECT ? AS note")


async def test_session_blocked_by_a_row_lock_names_the_blocker(
    make_check: MakeCheck, app_sessions: AppSessions, accounts: str
) -> None:
    holder = await app_sessions.connect(application="report-job")
    waiter = await app_sessions.connect(application="checkout")
    check = await make_check(blocked="1s")

    async with holder.transaction():  # ends before the fixture drops the table
        await holder.execute(f"SELECT * FROM {accounts} WHERE id = 1 FOR UPDATE")
        app_sessions.start(waiter.execute(f"UPDATE {accounts} SET balance = balance - 5 WHERE id = 1"))
        findings = await run_until(check, lambda found: "blocked" in found, "the lock wait to be reported")

    finding = findings["blocked"]
    assert (finding.status, finding.severity) == (Status.WARNING, Severity.P3)
    assert f"pid {waiter.get_server_pid()} blocked by pid {holder.get_server_pid()}" in finding.summary
    [line] = finding.evidence
    assert line.startswith(f"pid {waiter.get_server_pid()}, user hm_test_app, application checkout, waiting ")
    assert f"blocked by pid {holder.get_server_pid()}, state active" in line
    assert line.endswith("query: UPDATE accounts SET balance = balance - ? WHERE id = ?")


async def test_role_without_pg_monitor_gives_unknown_never_a_false_ok(
    make_check: MakeCheck, app_sessions: AppSessions, pg_server: Server, context: CheckContext
) -> None:
    app = await app_sessions.connect()
    app_sessions.start(app.fetch("SELECT pg_sleep(60)"))
    check = await make_check(dsn=pg_server.role_dsn(PLAIN), long_query="0s")

    findings = by_code(await check.run())

    assert set(findings) == {"unreachable", "privileges"}
    assert findings["privileges"].status is Status.UNKNOWN
    assert "GRANT pg_monitor TO hm_test_plain" in findings["privileges"].summary
    assert findings["unreachable"].status is Status.OK
    assert "slots used" not in findings["unreachable"].summary
    assert context.metrics.registry.get_sample_value("health_monitor_pg_long_queries", {"check": "db"}) is None
    labels = {"check": "db", "state": "active"}
    assert context.metrics.registry.get_sample_value("health_monitor_pg_connections", labels) is None
