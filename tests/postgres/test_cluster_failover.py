"""Failover with real processes: replicas (tests/postgres/cluster_child.py) on one throwaway
PostgreSQL, stopped, paused and killed by signals. Leases are short (2-3 s) and every wait is
bounded, so each test takes a few seconds."""

import asyncio
import signal
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.postgres.cluster_child import WORK_LOG
from tests.postgres.cluster_helpers import ChildReplica, fresh_database
from tests.postgres.helpers import wait_for
from tests.postgres.pg_server import Server


@pytest.fixture
async def dsn(pg_server: Server) -> AsyncIterator[str]:
    async with fresh_database(pg_server) as dsn:
        connection = await asyncpg.connect(dsn, timeout=10)
        await connection.execute(WORK_LOG)
        await connection.close()
        yield dsn


@pytest.fixture
async def replicas(dsn: str) -> AsyncIterator[list[ChildReplica]]:
    started: list[ChildReplica] = []
    yield started
    await asyncio.gather(*(replica.finish() for replica in started))


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn, timeout=10)
    yield connection
    await connection.close()


async def start_three(dsn: str, replicas: list[ChildReplica], lease: float) -> ChildReplica:
    """Three replicas; the first leads, the other two stand by; returns the leader."""
    first = await ChildReplica.start(dsn, "r1", lease)
    replicas.append(first)
    await first.wait_for_event("elected", within=15.0, epoch=1)
    for node in ("r2", "r3"):
        replicas.append(await ChildReplica.start(dsn, node, lease))
    for replica in replicas[1:]:
        await replica.wait_for_event("standby", within=15.0)
    return first


def leaders(replicas: list[ChildReplica], epoch: int) -> list[str]:
    return [replica.node for replica in replicas if replica.saw("elected", epoch=epoch)]


async def successor(replicas: list[ChildReplica], within: float, what: str) -> str:
    """Waits until exactly one replica has won epoch 2; its node."""

    async def elected() -> bool:
        return len(leaders(replicas, 2)) == 1

    await wait_for(elected, what, within=within)
    return leaders(replicas, 2)[0]


async def test_kill_9_of_the_leader_a_standby_leads_within_lease_plus_5_seconds(
    dsn: str, replicas: list[ChildReplica]
) -> None:
    lease = 3.0
    leader = await start_three(dsn, replicas, lease)

    leader.signal(signal.SIGKILL)

    assert await successor(replicas, lease + 5.0, "a standby to take over") != leader.node
    assert leaders(replicas, 3) == []


async def test_a_paused_leader_steps_down_and_its_late_writes_are_rejected_by_the_epoch(
    dsn: str, replicas: list[ChildReplica], db: asyncpg.Connection
) -> None:
    lease = 2.0
    leader = await start_three(dsn, replicas, lease)

    leader.signal(signal.SIGSTOP)

    assert await successor(replicas, lease + 5.0, "a standby to take over from the paused leader") != leader.node
    leader.signal(signal.SIGCONT)
    await leader.wait_for_event("stepped_down", within=10.0, epoch=1)
    await leader.wait_for_event("late_write", within=10.0, epoch=1)

    assert leader.saw("late_write", epoch=1, rejected=True)
    assert not leader.saw("late_write", rejected=False)
    late = await db.fetchval(
        "SELECT count(*) FROM work_log WHERE epoch = 1 AND at >= (SELECT elected_at FROM cluster_lease)"
    )
    assert late == 0, "no write of the old epoch landed after the new epoch began"
    assert await db.fetchval("SELECT count(*) FROM work_log WHERE epoch = 2") > 0, "the new leader works"
    assert leaders(replicas, 3) == [], "the paused replica woke up as a standby"


async def test_a_clean_sigterm_of_the_leader_hands_over_within_2_seconds(
    dsn: str, replicas: list[ChildReplica], db: asyncpg.Connection
) -> None:
    # A lease this long means no poll can explain a hand-over within 2 s: the NOTIFY does it.
    leader = await start_three(dsn, replicas, lease=30.0)

    leader.signal(signal.SIGTERM)

    assert await successor(replicas, 2.0, "a standby to take over from the resigning leader") != leader.node
    await leader.wait_for_event("stopped", within=10.0)
    assert await leader.process.wait() == 0
    assert leader.saw("stepped_down", epoch=1, reason="stopping")
    stopped_at = await db.fetchval("SELECT max(at) FROM work_log WHERE epoch = 1")
    assert stopped_at < await db.fetchval("SELECT elected_at FROM cluster_lease"), "no overlap of leaders' work"
