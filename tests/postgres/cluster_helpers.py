"""Helpers for the cluster tests and bench/bench_failover.py: a database of the test's own, a
listener that records what the elector told it, electors that are closed after the test, and
replica processes (tests/postgres/cluster_child.py) driven by signals."""

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg

from monitor.clock import Clock
from monitor.cluster.elector import Elector, RoleListener
from monitor.cluster.lease import LeaseTiming
from monitor.cluster.metrics import ClusterMetrics
from monitor.cluster.model import Term
from monitor.pg_migrations import apply_pg_migrations
from tests.postgres.helpers import wait_for
from tests.postgres.pg_server import APP, Server


@asynccontextmanager
async def fresh_database(server: Server, migrated: bool = True) -> AsyncIterator[str]:
    """A new database owned by the app role, at the state store's schema (which holds the
    cluster's tables) unless not `migrated`; its DSN; dropped (sessions and all) afterwards."""
    name = f"hm_test_{uuid4().hex[:10]}"
    admin = await asyncpg.connect(server.admin_dsn, timeout=10)
    try:
        await admin.execute(f"CREATE DATABASE {name} OWNER {APP.name}")
        dsn = server.role_dsn(APP, name)
        if migrated:
            await migrate(dsn)
        yield dsn
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def migrate(dsn: str) -> None:
    """The state store's schema, which holds the cluster's tables (the daemon's store opens first)."""
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await apply_pg_migrations(connection)
    finally:
        await connection.close()


@dataclass
class Recorder:
    """A RoleListener that remembers each promotion and demotion."""

    promoted_terms: list[Term] = field(default_factory=list)
    demotions: list[tuple[int, str]] = field(default_factory=list)

    async def promoted(self, term: Term) -> None:
        self.promoted_terms.append(term)

    async def demoted(self, term: Term, reason: str) -> None:
        self.demotions.append((term.epoch, reason))


class Electors:
    """Builds electors for one database; closes those still running after the test."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._made: list[Elector] = []

    def make(
        self,
        node: str,
        clock: Clock,
        lease: float = 3.0,
        listener: RoleListener | None = None,
        metrics: ClusterMetrics | None = None,
    ) -> Elector:
        elector = Elector(
            self.dsn, node, LeaseTiming(lease), listener or Recorder(), clock, datetime.now(UTC), metrics
        )
        self._made.append(elector)
        elector.start()
        return elector

    async def close(self) -> None:
        await asyncio.gather(*(elector.aclose() for elector in self._made), return_exceptions=True)


ROOT = Path(__file__).resolve().parents[2]


class Signalled:
    """A child process the test drives with signals; `_reader` collects what it prints."""

    process: asyncio.subprocess.Process
    _reader: asyncio.Task[None]

    def signal(self, number: signal.Signals) -> None:
        self.process.send_signal(number)

    async def finish(self) -> None:
        """Killed (woken first, if paused) unless it has ended; its output read to the end."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.kill()
        await self.process.wait()
        await self._reader


class ChildReplica(Signalled):
    """One replica process; its JSON events are collected as they are printed."""

    def __init__(self, process: asyncio.subprocess.Process, node: str) -> None:
        self.process = process
        self.node = node
        self.events: list[dict[str, Any]] = []
        self.log: list[str] = []
        """Its log lines (on stderr), shown when a wait fails."""
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, dsn: str, node: str, lease: float) -> "ChildReplica":
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.postgres.cluster_child", node, str(lease),
            cwd=ROOT, env={**os.environ, "CLUSTER_CHILD_DSN": dsn},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        return cls(process, node)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            if line.startswith(b"{"):
                self.events.append(json.loads(line))
            else:
                self.log.append(line.decode(errors="replace").rstrip())

    def saw(self, event: str, **fields: Any) -> bool:
        return any(e["event"] == event and all(e.get(k) == v for k, v in fields.items()) for e in self.events)

    async def wait_for_event(self, event: str, within: float, **fields: Any) -> None:
        async def seen() -> bool:
            return self.saw(event, **fields)

        await wait_for(seen, f"{self.node} to report {event} {fields or ''} (its log: {self.log[-5:]})", within=within)
