"""Issue 14 with whole daemons: three `health-monitor run` replicas on one throwaway PostgreSQL,
a local target, and local receivers (Slack-like, PagerDuty-like, webhooks) that record every
POST. Leases are 3 s; the bounds asserted are the contract's (a standby leads within lease +
5 s; a clean stop hands over within 2 s)."""

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.postgres.cluster_helpers import fresh_database
from tests.postgres.helpers import wait_for
from tests.postgres.pg_server import APP, Cluster, Server
from tests.postgres.replicas import Post, Scene, scene

LEASE = 3.0
DETECTED, RESOLVED = "INCIDENT DETECTED", "INCIDENT RESOLVED"


@pytest.fixture
async def dsn(pg_server: Server) -> AsyncIterator[str]:
    async with fresh_database(pg_server) as made:
        yield made


async def three_replicas(made: Scene) -> str:
    """r1 first (so it leads), then r2 and r3 as standbys; the leader's node."""
    await made.start("r1")
    leader = await made.wait_for_leader(within=15)
    await asyncio.gather(made.start("r2"), made.start("r3"))
    return leader


async def paged(made: Scene, within: float = 20) -> None:
    async def arrived() -> bool:
        return bool(made.receivers.slack(DETECTED)) and bool(made.receivers.pagerduty("trigger"))

    await wait_for(arrived, "the initial alert on Slack and PagerDuty", within=within)


async def test_three_replicas_page_once_and_a_killed_leaders_incident_escalates_on_time_and_resolves_once(
    dsn: str, tmp_path: Path
) -> None:
    async with scene(dsn, tmp_path, LEASE, escalate_after="15s") as made:
        leader = await three_replicas(made)
        standby = made.replicas["r2"]
        assert (await standby.get("/readyz"))[0] == 200
        _, metrics = await standby.get("/metrics")
        assert "health_monitor_leader 0.0" in metrics

        made.target.healthy = False
        await paged(made)
        opened = made.receivers.slack(DETECTED)[0].at
        [(incident_id, state)] = await made.rows("SELECT id, state FROM incidents")
        assert state == "open"
        # A standby answers the read API from the shared store.
        status, body = await standby.get(f"/api/incidents/{incident_id}")
        assert status == 200 and '"state": "open"' in body.replace('":"', '": "')

        made.replicas[leader].signal(signal.SIGKILL)
        killed = time.monotonic()
        successor = await made.wait_for_leader(within=LEASE + 5, other_than=leader)
        assert time.monotonic() - killed <= LEASE + 5

        def escalations() -> list[Post]:
            return [post for post in made.receivers.to("/lead") if post.body.get("kind") == "escalation"]

        async def escalated() -> bool:
            return bool(escalations())

        await wait_for(escalated, "the escalation, by the new leader", within=40)
        escalation = escalations()[0].at - opened
        assert 14.0 <= escalation <= 15.0 + LEASE + 5, f"escalated {escalation:.1f}s after the page, planned 15s"

        made.target.healthy = True

        async def resolved() -> bool:
            return bool(made.receivers.slack(RESOLVED)) and bool(made.receivers.pagerduty("resolve"))

        await wait_for(resolved, f"the resolution from {successor}", within=20)
        await asyncio.sleep(2.0)  # more runs, ticks and polls: nothing more is sent
        receivers = made.receivers
        assert (len(receivers.slack(DETECTED)), len(receivers.pagerduty("trigger"))) == (1, 1), "one initial alert"
        assert len(escalations()) == 1
        assert (len(receivers.slack(RESOLVED)), len(receivers.pagerduty("resolve"))) == (1, 1)
        assert [tuple(row) for row in await made.rows("SELECT id, state FROM incidents")] == [(incident_id, "resolved")]
        assert await made.rows("SELECT 1 FROM outbox WHERE state <> 'sent'") == []


async def test_a_paused_leader_steps_down_its_late_writes_rejected_and_nothing_is_sent_twice(
    dsn: str, tmp_path: Path
) -> None:
    async with scene(dsn, tmp_path, LEASE) as made:
        leader = await three_replicas(made)
        made.target.healthy = False
        await paged(made)
        paused = made.replicas[leader]
        paused.signal(signal.SIGSTOP)
        made.target.healthy = True  # decided by the next leader while the old one sleeps
        successor = await made.wait_for_leader(within=LEASE + 5, other_than=leader)

        async def resolved() -> bool:
            return bool(made.receivers.slack(RESOLVED))

        await wait_for(resolved, f"the resolution from {successor}", within=20)
        paused.signal(signal.SIGCONT)

        async def stepped_down() -> bool:
            _, metrics = await paused.get("/metrics")
            return "health_monitor_leader 0.0" in metrics

        await wait_for(stepped_down, f"{leader} to step down after SIGCONT", within=10)

        async def no_check_series() -> bool:  # a standby exports no check it does not run
            return 'health_monitor_check_up{check="api"}' not in (await paused.get("/metrics"))[1]

        await wait_for(no_check_series, f"{leader}'s check series to go once its leader work stopped", within=5)
        assert 'health_monitor_check_up{check="api"}' in (await made.replicas[successor].get("/metrics"))[1]
        await asyncio.sleep(2.0)
        assert await made.leader() == successor
        receivers = made.receivers
        assert (len(receivers.slack(DETECTED)), len(receivers.pagerduty("trigger"))) == (1, 1)
        assert (len(receivers.slack(RESOLVED)), len(receivers.pagerduty("resolve"))) == (1, 1)
        [(state,)] = await made.rows("SELECT state FROM incidents")
        assert state == "resolved", "the paused leader's late view of the incident was not written over it"


async def test_after_pg_terminate_backend_on_the_leaders_connections_one_replica_leads_and_nothing_is_lost(
    dsn: str, tmp_path: Path, pg_server: Server
) -> None:
    async with scene(dsn, tmp_path, LEASE) as made:
        leader = await three_replicas(made)
        made.target.healthy = False
        await paged(made)
        # An acknowledgement through a standby's API: written to the store, applied by the leader.
        [(incident_id,)] = await made.rows("SELECT id FROM incidents")
        standby = made.replicas["r2" if leader != "r2" else "r3"]
        status, _ = await standby.post(f"/api/incidents/{incident_id}/ack", {"by": "alice", "note": "on it"})
        assert status == 200

        async def acknowledged() -> bool:
            rows = await made.rows("SELECT document->>'acknowledged_by' FROM incidents WHERE id = $1", incident_id)
            return rows[0][0] == "alice"

        await wait_for(acknowledged, "the leader to apply the standby's acknowledgement", within=10)
        [(database,)] = await made.rows("SELECT current_database()")
        admin = await asyncpg.connect(pg_server.admin_dsn, timeout=10)
        try:
            # The leader's elector connection, and the state pools' connections (every replica's:
            # pg_stat_activity cannot tell whose they are).
            terminated = await admin.fetch(
                "SELECT application_name, pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND application_name IN ($2, 'health-monitor state')",
                database, f"health-monitor elector {leader}",
            )
        finally:
            await admin.close()
        assert f"health-monitor elector {leader}" in {row[0] for row in terminated}
        made.target.healthy = True
        await made.wait_for_leader(within=LEASE + 5)

        async def resolved() -> bool:
            return bool(made.receivers.slack(RESOLVED)) and bool(made.receivers.pagerduty("resolve"))

        await wait_for(resolved, "the resolution", within=30)
        await asyncio.sleep(1.0)
        assert len(made.receivers.slack(DETECTED)) == 1
        assert len(made.receivers.slack(RESOLVED)) == 1


async def test_a_clean_sigterm_of_the_leader_hands_over_within_2_seconds_to_a_standby_that_reloaded(
    dsn: str, tmp_path: Path
) -> None:
    async with scene(dsn, tmp_path, LEASE) as made:
        leader = await three_replicas(made)
        target = made.config.read_text().split('url = "', 1)[1].split('"', 1)[0]
        made.config.write_text(made.config.read_text() + f'\n[checks.added]\ntype = "http"\nurl = "{target}"\n')
        for node, replica in made.replicas.items():
            if node != leader:
                replica.signal(signal.SIGHUP)  # a standby reloads too: it leads with the file as it is now
        await asyncio.sleep(1.0)
        process = made.replicas[leader].process
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        successor = await made.wait_for_leader(within=2.0, other_than=leader)
        assert time.monotonic() - stopped <= 2.0
        assert await asyncio.wait_for(process.wait(), timeout=20) == 0

        async def runs_the_added_check() -> bool:
            return 'health_monitor_check_up{check="added"}' in (await made.replicas[successor].get("/metrics"))[1]

        await wait_for(runs_the_added_check, f"{successor} to run the check its reload added", within=15)


async def test_a_notification_in_flight_to_a_slow_receiver_when_the_leader_dies_arrives_at_most_twice(
    dsn: str, tmp_path: Path
) -> None:
    async with scene(dsn, tmp_path, LEASE) as made:
        path = made.config
        path.write_text(path.read_text() + '\n[sinks.slow]\ntype = "webhook"\nurl_env = "HM_TEST_SLOW_WEBHOOK"\n'
                        'timeout = "10s"\n')
        text = path.read_text().replace('notify = ["slack", "pagerduty"]', 'notify = ["slack", "pagerduty", "slow"]')
        path.write_text(text)
        made.receivers.slow_seconds = 30.0  # answers long after the leader is gone
        leader = await three_replicas(made)
        made.target.healthy = False

        async def in_flight() -> bool:
            return bool(made.receivers.to("/slow"))

        await wait_for(in_flight, "the slow receiver to be reached", within=20)
        made.replicas[leader].signal(signal.SIGKILL)
        made.receivers.slow_seconds = 0.0
        await made.wait_for_leader(within=LEASE + 5, other_than=leader)

        async def delivered() -> bool:
            rows = await made.rows("SELECT state FROM outbox WHERE sink = 'slow'")
            return [row["state"] for row in rows] == ["sent"]

        await wait_for(delivered, "the new leader to deliver the claimed notification", within=40)
        slow = made.receivers.to("/slow")
        keys = {post.headers.get("Idempotency-Key") for post in slow}
        assert 1 <= len(slow) <= 2, f"{len(slow)} deliveries"
        assert len(keys) == 1 and None not in keys, "every attempt carries the notification's id"


async def test_after_a_postgresql_restart_the_replicas_reconnect_one_leads_and_no_notification_is_lost(
    tmp_path: Path, throwaway_cluster: Cluster
) -> None:
    dsn = throwaway_cluster.server.role_dsn(APP)
    async with scene(dsn, tmp_path, LEASE) as made:
        await three_replicas(made)
        made.target.healthy = False
        await paged(made)
        await asyncio.to_thread(throwaway_cluster.stop)
        made.target.healthy = True  # the resolution is decided once a leader is back
        await asyncio.sleep(LEASE)
        await asyncio.to_thread(throwaway_cluster.start)
        await made.wait_for_leader(within=30)

        async def resolved() -> bool:
            return bool(made.receivers.slack(RESOLVED)) and bool(made.receivers.pagerduty("resolve"))

        await wait_for(resolved, "the resolution after the restart", within=40)
        assert len(made.receivers.slack(DETECTED)) >= 1
        [(state,)] = await made.rows("SELECT state FROM incidents WHERE key LIKE 'api/%'")
        assert state == "resolved"
