"""The lease elector against a real PostgreSQL, in-process. Each replica's own clock is a
FakeClock where the test is about lease timing (renewals, stepping down, polling), so that
only the database's clock runs by itself; a real clock where the test is about the connection."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from monitor.clock import SystemClock
from monitor.cluster import sql
from monitor.cluster.elector import Elector, application_name
from monitor.cluster.fence import fenced_execute
from monitor.cluster.metrics import ClusterMetrics
from monitor.cluster.model import Role, Term
from monitor.cluster.supervisor import LeaderWork, RoleSupervisor
from monitor.cluster.view import read_view
from monitor.store import StaleEpoch
from tests.fakes import FakeClock
from tests.net import wait_until
from tests.postgres.cluster_helpers import Electors, fresh_database, migrate
from tests.postgres.helpers import wait_for
from tests.postgres.pg_server import APP, Cluster, Server

SERIES = ("health_monitor_leader", "health_monitor_leader_epoch", "health_monitor_leader_changes_total")
WORK_LOG = "CREATE TABLE work_log (node text NOT NULL, epoch bigint NOT NULL)"
WRITE = "INSERT INTO work_log (node, epoch) SELECT $1, $2 WHERE {fence}"


@pytest.fixture
async def dsn(pg_server: Server) -> AsyncIterator[str]:
    async with fresh_database(pg_server) as dsn:
        yield dsn


@pytest.fixture
async def electors(dsn: str) -> AsyncIterator[Electors]:
    made = Electors(dsn)
    yield made
    await made.close()


@pytest.fixture
async def db(dsn: str, electors: Electors) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn, timeout=10)
    await connection.execute(WORK_LOG)
    yield connection
    await connection.close()


async def roles(db: asyncpg.Connection) -> dict[str, str]:
    return {row["node"]: row["role"] for row in await db.fetch("SELECT node, role FROM cluster_members")}


async def lease_row(db: asyncpg.Connection) -> tuple[str | None, int, bool]:
    row = await db.fetchrow("SELECT leader, epoch, expires_at >= now() AS held FROM cluster_lease")
    return row["leader"], row["epoch"], row["held"]


def leader_work() -> tuple[dict[str, LeaderWork], list[str]]:
    """Two work items that record their start and, in `finally`, their end."""
    events: list[str] = []

    def item(name: str) -> LeaderWork:
        async def run(term: Term) -> None:
            events.append(f"{name} started {term.epoch}")
            try:
                await FakeClock().sleep_until(1e9)
            finally:
                events.append(f"{name} stopped {term.epoch}")

        return run

    return {"checks": item("checks"), "delivery": item("delivery")}, events


async def a_leads_b_and_c_stand_by(
    electors: Electors, db: asyncpg.Connection, metrics: dict[str, ClusterMetrics] | None = None
) -> tuple[Elector, Elector, Elector]:
    """Three replicas on fake clocks that never move unless the test moves them."""
    metrics = metrics or {}
    a = electors.make("a", FakeClock(), metrics=metrics.get("a"))
    await wait_until(lambda: a.leading, "a to be elected")
    b = electors.make("b", FakeClock(), metrics=metrics.get("b"))
    c = electors.make("c", FakeClock())

    async def all_seen() -> bool:
        return await roles(db) == {"a": "leader", "b": "standby", "c": "standby"}

    await wait_for(all_seen, "three members, a the leader")
    return a, b, c


async def test_one_replica_leads_with_epoch_1_and_the_others_stand_by(electors: Electors, db) -> None:
    registries = {"a": CollectorRegistry(), "b": CollectorRegistry()}
    metrics = {node: ClusterMetrics(registry) for node, registry in registries.items()}
    a, b, c = await a_leads_b_and_c_stand_by(electors, db, metrics)
    assert a.term is not None and a.term.epoch == 1
    assert not b.leading and not c.leading
    view = await read_view(db)
    assert (view.leader, view.epoch, view.since) == ("a", 1, a.term.elected_at)
    assert [(member.node, member.role) for member in view.members] == [
        ("a", Role.LEADER), ("b", Role.STANDBY), ("c", Role.STANDBY),
    ]
    exported = {
        node: tuple(registry.get_sample_value(name) for name in SERIES) for node, registry in registries.items()
    }
    assert exported == {"a": (1, 1, 1), "b": (0, 1, 0)}, "a standby exports 0 and the cluster's epoch"


async def test_the_leader_renews_on_the_database_clock_and_trusts_itself_until_lease_minus_1s(
    electors: Electors, db
) -> None:
    clock = FakeClock()
    a = electors.make("a", clock, lease=3.0)
    await wait_until(lambda: a.leading, "a to be elected")
    assert a.term is not None and a.term.trusted_until == 2.0  # elected by the attempt at 0
    first = await db.fetchval("SELECT expires_at FROM cluster_lease")

    await clock.advance(1.0)  # renew_every = lease / 3

    async def renewed() -> bool:
        return await db.fetchval("SELECT expires_at FROM cluster_lease") > first

    await wait_for(renewed, "the lease to be renewed")
    assert a.leading and a.term.epoch == 1
    await wait_until(lambda: a.term is not None and a.term.trusted_until == 3.0, "trust extended from the attempt")
    assert await db.fetchval("SELECT expires_at <= now() + interval '3 seconds' FROM cluster_lease")


async def test_a_leader_that_cannot_renew_steps_down_before_anyone_can_take_over(
    electors: Electors, db, dsn: str
) -> None:
    work, events = leader_work()
    clock = FakeClock()
    supervisor = RoleSupervisor(work, clock)
    a = electors.make("a", clock, lease=3.0, listener=supervisor)
    await wait_until(lambda: supervisor.running == {"checks", "delivery"}, "the leader's work to start")
    paused_term = a.term
    assert paused_term is not None

    # The renewals hang behind a lock, as they would with the database or the network stuck.
    blocker = await asyncpg.connect(dsn, timeout=10)
    stuck = blocker.transaction()
    await stuck.start()
    await blocker.execute("SELECT * FROM cluster_lease FOR UPDATE")
    await clock.advance(1.0)  # the renewal starts and hangs
    await clock.advance(1.0)  # lease - 1s after the last successful attempt

    await wait_until(lambda: not a.leading and not supervisor.running, "a to step down")
    assert sorted(events) == ["checks started 1", "checks stopped 1", "delivery started 1", "delivery stopped 1"]
    assert await lease_row(db) == ("a", 1, True), "it stepped down while its lease still held"

    b_clock = FakeClock()
    b = electors.make("b", b_clock, lease=3.0)

    async def b_stands_by() -> bool:
        return (await roles(db)).get("b") == "standby"

    await wait_for(b_stands_by, "b to stand by")
    await stuck.rollback()
    await blocker.close()
    # a gives its row back at its next round (its poll, or its reconnection if the hung renewal
    # timed out) and leaves that round's election to the others; b hears the NOTIFY (b's own
    # clock never moves, so nothing else could wake it).
    for _ in range(100):
        if b.leading:
            break
        await clock.advance(0.1)
        await asyncio.sleep(0.05)  # a real pause: the database answers in real time
    assert b.leading, "b took over"
    assert b.term is not None and b.term.epoch == 2

    with pytest.raises(StaleEpoch):
        await fenced_execute(db, paused_term, WRITE, "a", paused_term.epoch)
    await fenced_execute(db, b.term, WRITE, "b", b.term.epoch)
    assert [tuple(row) for row in await db.fetch("SELECT node, epoch FROM work_log")] == [("b", 2)]


async def test_a_rejected_write_makes_the_leader_step_down_at_once(electors: Electors, db) -> None:
    work, events = leader_work()
    clock = FakeClock()
    supervisor = RoleSupervisor(work, clock)
    a = electors.make("a", clock, listener=supervisor)
    await wait_until(lambda: supervisor.running == {"checks", "delivery"}, "the leader's work to start")
    term = a.term
    assert term is not None
    # Another replica won the row while this one was not looking (its own clock never moved).
    await db.execute("UPDATE cluster_lease SET leader = 'b', epoch = epoch + 1, expires_at = now() + interval '1h'")

    with pytest.raises(StaleEpoch):
        await fenced_execute(db, term, WRITE, "a", term.epoch)

    await wait_until(lambda: not a.leading and not supervisor.running, "a to step down")
    assert "checks stopped 1" in events and "delivery stopped 1" in events
    assert await db.fetchval("SELECT count(*) FROM work_log") == 0


async def test_a_clean_resign_wakes_a_standby_through_notify_and_every_election_adds_one_to_the_epoch(
    electors: Electors, db
) -> None:
    a, b, c = await a_leads_b_and_c_stand_by(electors, db)

    # No standby's clock moves: only the resignation's NOTIFY can wake them.
    await a.aclose()
    await wait_until(lambda: b.leading or c.leading, "a standby to take over", limit=5.0)
    first_successor, last = (b, c) if b.leading else (c, b)
    assert first_successor.term is not None and first_successor.term.epoch == 2
    assert "a" not in await roles(db), "a resigned and left"

    await first_successor.aclose()
    await wait_until(lambda: last.leading, "the last replica to take over", limit=5.0)
    assert last.term is not None and last.term.epoch == 3
    assert (await read_view(db)).epoch == 3


async def test_a_standby_takes_an_expired_lease_by_polling_without_any_notify(electors: Electors, db) -> None:
    # A leader that died without a word: its lease runs out, no NOTIFY comes.
    await db.execute(
        "INSERT INTO cluster_lease (name, leader, epoch, elected_at, expires_at) "
        "VALUES ($1, 'dead', 7, now(), now() + interval '500 milliseconds')",
        sql.LEASE_NAME,
    )
    clock = FakeClock()
    b = electors.make("b", clock, lease=3.0)

    async def expired() -> bool:
        return (await roles(db)).get("b") == "standby" and not (await lease_row(db))[2]

    await wait_for(expired, "b to stand by and the dead leader's lease to expire")
    assert not b.leading
    await clock.advance(1.1)  # poll_every = lease / 3, plus at most a tenth of jitter
    await wait_until(lambda: b.leading, "b to take the expired lease")
    assert b.term is not None and b.term.epoch == 8


async def test_the_leader_reconnects_after_pg_terminate_backend_and_keeps_its_term(electors: Electors, db) -> None:
    a = electors.make("a", SystemClock(), lease=3.0)
    b = electors.make("b", SystemClock(), lease=3.0)
    await wait_until(lambda: a.leading or b.leading, "a leader")
    leader, other = (a, b) if a.leading else (b, a)
    epoch = leader.term.epoch if leader.term else None
    name = application_name(leader.node)
    pid = await db.fetchval("SELECT pid FROM pg_stat_activity WHERE application_name = $1", name)
    assert pid is not None

    assert await db.fetchval("SELECT pg_terminate_backend($1)", pid)

    async def reconnected() -> bool:
        new = await db.fetchval("SELECT pid FROM pg_stat_activity WHERE application_name = $1", name)
        return new is not None and new != pid and (await roles(db)).get(leader.node) == "leader"

    await wait_for(reconnected, "the leader's elector to reconnect")
    await _renewed_once_more(db)
    assert leader.leading and leader.term is not None and leader.term.epoch == epoch
    assert not other.leading
    assert await lease_row(db) == (leader.node, epoch, True)


async def test_after_a_postgresql_restart_the_replicas_reconnect_and_one_leads(
    throwaway_cluster: Cluster,
) -> None:
    dsn = throwaway_cluster.server.role_dsn(APP)
    await migrate(dsn)
    made = Electors(dsn)
    try:
        a = made.make("a", SystemClock(), lease=2.0)
        b = made.make("b", SystemClock(), lease=2.0)
        await wait_until(lambda: a.leading or b.leading, "a leader")
        before = (a.term or b.term).epoch  # type: ignore[union-attr]

        throwaway_cluster.stop()
        throwaway_cluster.start()

        db = await asyncpg.connect(dsn, timeout=10)
        try:

            names = [application_name("a"), application_name("b")]

            async def reconnected_and_one_leads() -> bool:
                connected = await db.fetchval(
                    "SELECT count(DISTINCT application_name) FROM pg_stat_activity WHERE application_name = ANY($1)",
                    names,
                )
                leader, epoch, held = await lease_row(db)
                leading = [e for e in (a, b) if e.term is not None]
                return (
                    connected == 2
                    and await roles(db) == {leader: "leader", ({"a", "b"} - {leader}).pop(): "standby"}
                    and held
                    and [(e.node, e.term.epoch) for e in leading] == [(leader, epoch)]  # type: ignore[union-attr]
                )

            await wait_for(reconnected_and_one_leads, "both replicas to reconnect and one to lead")
            assert (await lease_row(db))[1] >= before
        finally:
            await db.close()
    finally:
        await made.close()


async def _renewed_once_more(db: asyncpg.Connection) -> None:
    first = await db.fetchval("SELECT expires_at FROM cluster_lease")

    async def later() -> bool:
        return await db.fetchval("SELECT expires_at FROM cluster_lease") > first

    await wait_for(later, "one more renewal")


async def test_a_leader_whose_connection_was_cut_still_resigns_when_it_stops(electors: Electors, db) -> None:
    a, b, c = await a_leads_b_and_c_stand_by(electors, db)
    assert await db.fetchval(
        "SELECT bool_and(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
        application_name("a"),
    )

    await a.aclose()  # its own connection is gone: it resigns on a fresh one

    await wait_until(lambda: b.leading or c.leading, "a standby to take over", limit=5.0)
    assert "a" not in await roles(db)


async def test_an_election_waits_for_a_fenced_write_in_progress(electors: Electors, db, dsn: str) -> None:
    a = electors.make("a", FakeClock())
    await wait_until(lambda: a.leading, "a to be elected")
    term = a.term
    assert term is not None
    writer = await asyncpg.connect(dsn, timeout=10)
    taker = await asyncpg.connect(dsn, timeout=10)
    try:
        in_progress = writer.transaction()
        await in_progress.start()
        await fenced_execute(writer, term, WRITE, "a", term.epoch)
        # Another replica takes the row over (as an election after expiry would): it must wait.
        takeover = asyncio.ensure_future(
            taker.execute("UPDATE cluster_lease SET leader = 'b', epoch = epoch + 1, elected_at = clock_timestamp()")
        )

        async def waiting() -> bool:
            return bool(
                await db.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = $1", taker.get_server_pid()
                )
            )

        await wait_for(waiting, "the takeover to wait for the write's lock")
        assert not takeover.done()
        await in_progress.commit()
        await takeover  # only now: the old epoch's write committed before the new epoch began
        with pytest.raises(StaleEpoch):
            await fenced_execute(writer, term, WRITE, "a", term.epoch)
    finally:
        await writer.close()
        await taker.close()
