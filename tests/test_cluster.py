"""The cluster code that needs no PostgreSQL: lease timing, the role supervisor (on a fake
clock), the config keys, and a SQLite daemon, which is one process and always the leader."""

import asyncio
import json
import os
import socket
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.cli import main
from monitor.cluster.lease import LeaseTiming
from monitor.cluster.model import Term
from monitor.cluster.single import SqliteMembership
from monitor.cluster.supervisor import RoleSupervisor
from monitor.config import ConfigError, load_config
from monitor.sqlite_thread import SqliteThread
from monitor.store import StaleEpoch
from tests.fakes import START, FakeClock, settle
from tests.net import free_port, running_daemon


def term(epoch: int = 1) -> Term:
    return Term("a", epoch, START, trusted_until=10.0)


# Lease timing


def test_a_leader_trusts_its_lease_until_one_second_before_it_can_expire() -> None:
    timing = LeaseTiming(15.0)
    assert timing.trusted_until(100.0) == 114.0
    assert timing.renew_every == 5.0
    assert timing.poll_every == 5.0
    assert LeaseTiming(3.0).poll_every == 1.0
    assert LeaseTiming(60.0).poll_every == 5.0, "a standby polls at least every 5 s"
    assert 1.0 <= LeaseTiming(3.0).next_poll(0.0) <= 1.1


def test_reconnection_backs_off_exponentially_up_to_the_poll_interval() -> None:
    timing = LeaseTiming(15.0)
    assert timing.backoff(0) <= 0.1
    assert 0.8 <= timing.backoff(4) <= 1.6
    assert all(timing.backoff(failures) <= timing.poll_every for failures in range(100))


def test_a_lease_shorter_than_two_seconds_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2s"):
        LeaseTiming(1.5)


# The role supervisor


class Work:
    """Leader work items that record what they did."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.events: list[str] = []
        self.failures_left = 0

    async def checks(self, term: Term) -> None:
        self.events.append(f"checks {term.epoch}")
        try:
            while True:
                await self.clock.sleep_until(self.clock.monotonic() + 1.0)
                self.events.append(f"check ran {term.epoch}")
        finally:
            self.events.append(f"checks stopped {term.epoch}")

    async def flaky(self, term: Term) -> None:
        self.events.append(f"flaky {term.epoch}")
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("boom")
        await self.clock.sleep_until(1e9)

    async def fenced(self, term: Term) -> None:
        self.events.append(f"fenced {term.epoch}")
        raise StaleEpoch("another replica leads")


async def test_the_leaders_work_starts_on_election_and_all_of_it_stops_on_demotion() -> None:
    clock = FakeClock()
    work = Work(clock)
    supervisor = RoleSupervisor({"checks": work.checks, "flaky": work.flaky}, clock)
    first = term(1)

    await supervisor.promoted(first)
    await clock.advance(2.0)
    assert supervisor.running == {"checks", "flaky"}
    assert work.events.count("check ran 1") == 2

    await supervisor.demoted(first, "lease lost")
    assert supervisor.running == set()
    assert work.events[-1] == "checks stopped 1"
    await clock.advance(10.0)
    assert "check ran 1" not in work.events[work.events.index("checks stopped 1"):], "no check runs on a standby"


async def test_a_demotion_of_an_older_term_leaves_the_current_one_running() -> None:
    clock = FakeClock()
    work = Work(clock)
    supervisor = RoleSupervisor({"checks": work.checks}, clock)
    old, new = term(1), term(2)
    await supervisor.promoted(old)
    await settle()
    await supervisor.promoted(new)
    await settle()
    assert work.events == ["checks 1", "checks stopped 1", "checks 2"]

    await supervisor.demoted(old, "late news")
    assert supervisor.running == {"checks"}
    await supervisor.aclose()
    assert supervisor.running == set()


async def test_a_failing_work_item_starts_again_and_a_fenced_one_stops_for_the_term() -> None:
    clock = FakeClock()
    work = Work(clock)
    work.failures_left = 2
    supervisor = RoleSupervisor({"flaky": work.flaky, "fenced": work.fenced}, clock, restart_after=1.0)
    await supervisor.promoted(term(1))
    await settle()
    assert work.events == ["flaky 1", "fenced 1"]
    await clock.advance(1.0)
    await clock.advance(1.0)
    assert work.events.count("flaky 1") == 3, "started again after each failure"
    assert work.events.count("fenced 1") == 1, "a stale epoch is not retried"
    assert supervisor.running == {"flaky"}
    await supervisor.aclose()


# Config


VALID = """
[monitor]
state_path = "state.db"

[checks.api]
type = "tcp"
host = "127.0.0.1"
port = 9
"""


def test_node_defaults_to_host_name_and_pid_and_lease_to_15s(write_config, clean_env) -> None:
    monitor = load_config(write_config(VALID)).monitor
    assert monitor.node_name == f"{socket.gethostname()}-{os.getpid()}"
    assert monitor.leader_lease == 15.0


def test_node_can_be_set_in_the_environment(write_config, clean_env, monkeypatch) -> None:
    monkeypatch.setenv("MONITOR_MONITOR__NODE", "replica-b")
    assert load_config(write_config(VALID)).monitor.node_name == "replica-b"


def test_a_lease_too_short_to_step_down_in_time_is_a_config_error(write_config, clean_env) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write_config(VALID.replace("[monitor]", '[monitor]\nleader_lease = "1s"\nnode = "a b"')))
    node, lease = raised.value.problems
    assert node == "monitor.node: a node name is 1 to 128 characters without spaces, got 'a b'"
    assert lease.startswith("monitor.leader_lease: must be at least 2s")


# A SQLite daemon: always the leader


async def test_a_sqlite_daemon_is_the_leader_and_health_monitor_cluster_shows_it(
    tmp_path: Path, clean_env, capsys
) -> None:
    port = free_port()
    path = tmp_path / "monitor.toml"
    path.write_text(
        VALID.replace("[monitor]", '[monitor]\nnode = "solo"\nincident_log = "incidents.log"')
        + f'\n[server]\nlisten = "127.0.0.1:{port}"\n'
    )
    async with running_daemon(path) as daemon, aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/api/cluster") as response:
            assert response.status == 200
            body = await response.json()
        assert body["mode"] == "single" and body["leader"] == "solo" and body["epoch"] == 0
        assert [(replica["node"], replica["role"]) for replica in body["replicas"]] == [("solo", "leader")]
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            samples = {
                sample.name: sample.value
                for family in text_string_to_metric_families(await response.text())
                for sample in family.samples
            }
        assert samples["health_monitor_leader"] == 1
        assert samples["health_monitor_leader_epoch"] == 0
        assert samples["health_monitor_leader_changes_total"] == 1

        capsys.readouterr()
        code = await asyncio.to_thread(main, ["cluster", "--config", str(path), "--format", "json"])
        assert code == 0
        assert json.loads(capsys.readouterr().out)["leader"] == "solo"
        assert daemon.cluster.leading

    capsys.readouterr()
    code = await asyncio.to_thread(main, ["cluster", "--config", str(path)])
    assert code == 1, "no replica leads once the daemon stopped"
    assert capsys.readouterr().out.startswith("no replica leads now")


async def test_a_process_killed_without_leaving_is_listed_for_a_minute_and_forgotten_after_a_day(
    tmp_path: Path,
) -> None:
    file = await SqliteThread.open(tmp_path / "state.db")
    membership = SqliteMembership(file)
    await membership.seen("killed-41", START, START)
    assert [member.node for member in (await membership.view(START + timedelta(seconds=59))).members] == ["killed-41"]
    assert (await membership.view(START + timedelta(seconds=61))).leader is None

    later = START + timedelta(days=1, seconds=1)
    await membership.seen("solo-42", later, later)
    assert [member.node for member in (await membership.view(later, seen_within=1e9)).members] == ["solo-42"]
    await file.close()
