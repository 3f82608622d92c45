"""One replica's campaign for the lease, on a dedicated asyncpg connection.

Not a pool connection: LISTEN dies when a pooled connection is released, and a pool may be
busy or closed exactly when the lease must be renewed. The elector

- tries to take the lease row at start, every `poll_every` (plus jitter) and at once when a
  resigning leader NOTIFYs (a wake-up hint only: it is lost while disconnected, so polling stays);
- as leader renews every `renew_every`, on the database's clock, and trusts itself until
  `attempt start + lease - 1s` on its own monotonic clock (a watchdog demotes it then, even while
  a statement or a reconnection hangs);
- reconnects with capped exponential backoff after the connection or the server goes away, and a
  leader that reconnects in time keeps its term;
- on `aclose()` stops the leader's work first, then resigns, so that a standby takes over at once.

Promotion and demotion go to a `RoleListener` (the `RoleSupervisor`), which starts and stops the
leader's work.
"""

import asyncio
from datetime import datetime
from typing import Protocol

import asyncpg
import structlog

from monitor.clock import Clock
from monitor.cluster import sql
from monitor.cluster.lease import LeaseTiming
from monitor.cluster.metrics import ClusterMetrics
from monitor.cluster.model import Role, Term
from monitor.scrub import scrub

log = structlog.get_logger("monitor.cluster")

CONNECTION_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
"""What a lost connection, a server going away or a statement cut short raise (InternalClientError:
a connection left in the middle of an operation by a lost server)."""


class RoleListener(Protocol):
    async def promoted(self, term: Term) -> None:
        """This replica won `term`: start the leader's work (return without waiting for it)."""
        ...

    async def demoted(self, term: Term, reason: str) -> None:
        """`term` is over: stop all of the leader's work; return once nothing of it runs."""
        ...


def application_name(node: str) -> str:
    """How the elector's connection shows in pg_stat_activity (PostgreSQL keeps 63 bytes)."""
    return f"health-monitor elector {node}"[:63]


class Elector:
    def __init__(
        self,
        dsn: str,
        node: str,
        timing: LeaseTiming,
        listener: RoleListener,
        clock: Clock,
        started_at: datetime,
        metrics: ClusterMetrics | None = None,
    ) -> None:
        self.node = node
        self.timing = timing
        self.term: Term | None = None
        """The term this replica leads, while it may act as leader."""
        self.cluster_epoch = 0
        self._dsn = dsn
        self._listener = listener
        self._clock = clock
        self._started_at = started_at
        self._metrics = metrics
        self._connection: asyncpg.Connection | None = None
        self._wake = asyncio.Event()
        self._elected = asyncio.Event()
        self._released: Term | None = None
        """A term given up while its lease row may still name us: resigned at the next round."""
        self._failures = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._demotions: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def leading(self) -> bool:
        return self.term is not None

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._campaign_forever(), name="cluster:elector"),
            asyncio.create_task(self._watch_trust(), name="cluster:trust"),
        ]

    async def aclose(self) -> None:
        """Stop campaigning. A leader stops its work, then resigns (a standby takes over at once)."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._demotions, return_exceptions=True)
        term = self.term
        if term is not None:
            await self._demote(term, "stopping")
        released, self._released = self._released, None
        try:
            # The campaign may have been cancelled in the middle of a statement, which leaves its
            # connection unusable: then once more on a fresh one.
            for fresh in (False, True):
                try:
                    await self._leave(released, fresh)
                    return
                except CONNECTION_ERRORS as exc:
                    if fresh:
                        log.warning("cluster.resign_failed", node=self.node, error=_describe(exc))
        finally:
            await self._disconnect()

    async def _leave(self, released: Term | None, fresh: bool) -> None:
        if fresh or self._connection is None or self._connection.is_closed():
            await self._disconnect()
            self._connection = await self._open()
        if released is not None:
            await self._resign(self._connection, released)
        await self._connection.execute(sql.LEAVE, self.node, self._started_at, timeout=self.timing.query_timeout)

    async def _campaign_forever(self) -> None:
        while True:
            try:
                await self._connect()
                if self._failures:
                    log.info("cluster.reconnected", node=self.node, leading=self.leading)
                await self._campaign()
            except CONNECTION_ERRORS as exc:
                self._failures += 1
                log.warning(
                    "cluster.database_unreachable",
                    node=self.node,
                    error=_describe(exc),
                    leading=self.leading,
                    failures=self._failures,
                )
            except Exception:  # the campaign must outlive any surprise, or this replica never leads again
                self._failures += 1
                log.exception("cluster.elector_failed", node=self.node, leading=self.leading)
            await self._disconnect()
            await self._clock.sleep_until(self._clock.monotonic() + self.timing.backoff(self._failures - 1))

    async def _connect(self) -> None:
        connection = await self._open()
        try:
            async with connection.transaction():
                await connection.execute(sql.ENSURE_LEASE_ROW, sql.LEASE_NAME, timeout=self.timing.query_timeout)
                await connection.execute(sql.FORGET_GONE, timeout=self.timing.query_timeout)
            await connection.add_listener(sql.WAKE_CHANNEL, self._on_notify)
        except BaseException:
            connection.terminate()
            raise
        self._connection = connection

    async def _open(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self._dsn,
            timeout=self.timing.query_timeout,
            command_timeout=self.timing.query_timeout,
            server_settings={"application_name": application_name(self.node)},
        )

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            connection.terminate()

    async def _campaign(self) -> None:
        connection = self._connection
        assert connection is not None
        while True:
            started = self._clock.monotonic()
            self._wake.clear()
            if self._released is not None:
                # Give the row back and leave this round's election to the others.
                await self._resign(connection, self._released)
            elif self.term is None:
                await self._try_elect(connection, started)
            else:
                await self._renew(connection, self.term, started)
            await self._heartbeat(connection)
            self._failures = 0
            if self.term is not None:
                await self._clock.sleep_until(started + self.timing.renew_every)
            else:
                await self._pause_until(self.timing.next_poll(started))

    async def _try_elect(self, connection: asyncpg.Connection, started: float) -> None:
        row = await connection.fetchrow(
            sql.ELECT, sql.LEASE_NAME, self.node, self.timing.lease, timeout=self.timing.query_timeout
        )
        if row is None:
            return
        term = Term(self.node, row["epoch"], row["elected_at"], self.timing.trusted_until(started), self._on_stale)
        if self._clock.monotonic() >= term.trusted_until:
            log.warning("cluster.election_too_slow", node=self.node, epoch=term.epoch)
            await self._resign(connection, term)
            return
        await self._promote(term)

    async def _renew(self, connection: asyncpg.Connection, term: Term, started: float) -> None:
        row = await connection.fetchrow(
            sql.RENEW, sql.LEASE_NAME, self.node, term.epoch, self.timing.lease, timeout=self.timing.query_timeout
        )
        if self.term is not term:
            return  # demoted while the statement ran; `_released` gives the row back
        trusted_until = self.timing.trusted_until(started)
        if row is None:
            await self._demote(term, "the lease was lost (expired, or another replica holds it)")
        elif self._clock.monotonic() >= trusted_until:
            await self._demote(term, "the renewal answered after the lease could no longer be trusted")
        else:
            term.trusted_until = trusted_until

    async def _resign(self, connection: asyncpg.Connection, term: Term) -> None:
        self._released = None
        await connection.execute(
            sql.RESIGN, sql.LEASE_NAME, self.node, term.epoch, sql.WAKE_CHANNEL, timeout=self.timing.query_timeout
        )
        log.info("cluster.resigned", node=self.node, epoch=term.epoch)

    async def _heartbeat(self, connection: asyncpg.Connection) -> None:
        term = self.term
        role = Role.LEADER if term is not None else Role.STANDBY
        epoch = await connection.fetchval(
            sql.HEARTBEAT,
            sql.LEASE_NAME,
            self.node,
            self._started_at,
            role.value,
            term.epoch if term is not None else 0,
            timeout=self.timing.query_timeout,
        )
        self.cluster_epoch = int(epoch or 0)
        if self._metrics is not None:
            self._metrics.epoch.set(self.cluster_epoch)

    async def _pause_until(self, deadline: float) -> None:
        """Sleep until `deadline` or a NOTIFY from a resigning leader, whichever comes first."""
        sleeper = asyncio.ensure_future(self._clock.sleep_until(deadline))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    def _on_notify(self, _connection: object, _pid: int, _channel: str, resigned: str) -> None:
        if resigned != self.node:
            self._wake.set()

    async def _watch_trust(self) -> None:
        while True:
            term = self.term
            if term is None:
                await self._elected.wait()
                continue
            await self._clock.sleep_until(term.trusted_until)
            if self.term is term and self._clock.monotonic() >= term.trusted_until:
                await self._demote(term, "the lease could not be renewed within lease - 1s")

    def _on_stale(self, term: Term) -> None:
        if self.term is term:
            task = asyncio.get_running_loop().create_task(
                self._demote(term, "a write carrying this epoch was rejected"), name="cluster:stale"
            )
            self._demotions.add(task)
            task.add_done_callback(self._demotions.discard)

    async def _promote(self, term: Term) -> None:
        self.term = term
        self.cluster_epoch = term.epoch
        self._elected.set()
        if self._metrics is not None:
            self._metrics.role_changed(True, term.epoch)
        log.info("cluster.elected", node=self.node, epoch=term.epoch)
        await self._listener.promoted(term)

    async def _demote(self, term: Term, reason: str) -> None:
        if self.term is not term:
            return
        self.term = None
        self._elected.clear()
        self._released = term
        if self._metrics is not None:
            self._metrics.role_changed(False, term.epoch)
        log.warning("cluster.stepped_down", node=self.node, epoch=term.epoch, reason=reason)
        await self._listener.demoted(term, reason)


def _describe(exc: BaseException) -> str:
    return scrub(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
