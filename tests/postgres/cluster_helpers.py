"""Helpers for the cluster tests: a database of the test's own, a listener that records what
the elector told it, electors that are closed after the test."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg

from monitor.clock import Clock
from monitor.cluster.elector import Elector
from monitor.cluster.lease import LeaseTiming
from monitor.cluster.model import Term
from tests.postgres.pg_server import APP, Server


@asynccontextmanager
async def fresh_database(server: Server) -> AsyncIterator[str]:
    """A new database owned by the app role; its DSN; dropped (sessions and all) afterwards."""
    name = f"hm_cluster_{uuid4().hex[:10]}"
    admin = await asyncpg.connect(server.admin_dsn, timeout=10)
    try:
        await admin.execute(f"CREATE DATABASE {name} OWNER {APP.name}")
        yield server.role_dsn(APP, name)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


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

    def make(self, node: str, clock: Clock, lease: float = 3.0, listener: object | None = None) -> Elector:
        elector = Elector(self.dsn, node, LeaseTiming(lease), listener or Recorder(), clock, datetime.now(UTC))  # type: ignore[arg-type]
        self._made.append(elector)
        elector.start()
        return elector

    async def close(self) -> None:
        await asyncio.gather(*(elector.aclose() for elector in self._made), return_exceptions=True)
