"""The state store as the daemon uses it: a call that fails (a full disk, an I/O error, a lost
connection) never raises. A read answers empty; a write is kept, in order, and written again
once the store takes writes (a later write, or `retry()` from the daemon's tick); until then
`problem` says why, which `/readyz` and the monitor's own incident report. Each failure is
counted (`health_monitor_state_store_errors_total{operation}`) and logged at most once a minute.

A change the incident core decided is kept whole: the waiting changes are merged into one and
written in one transaction when the store is back. A notification that cannot be recorded
is still delivered: a page that cannot be recorded is better than no page (and a delivery
that cannot be claimed is attempted).

StaleEpoch is not a failure of the store: it is raised to the caller, after `on_stale` has
heard it (the daemon steps down), and what waits for a stale epoch is forgotten with
`forget_waiting` (the next leader decides again from what the store holds)."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

import structlog

from monitor.clock import Clock
from monitor.metrics import MonitorMetrics
from monitor.model import Incident
from monitor.store import (
    PRUNE_BATCH,
    UNSHARED_CLAIM,
    Acknowledgement,
    CheckMemory,
    Claim,
    Delivery,
    DeliveryState,
    OutboxEntry,
    RecordOutcome,
    Silence,
    StaleEpoch,
    StateChange,
    StateStore,
    StoreUnavailable,
)

log = structlog.get_logger("monitor.store")

LOG_EVERY_SECONDS = 60.0
MAX_WAITING_DELIVERY_WRITES = 100_000
"""Outbox writes kept while the store refuses them (about 200 MB of documents); past that a
delivery's record is dropped (counted, logged) and the notification still goes out. Incident
writes are always kept: one per incident waits at most."""

T = TypeVar("T")


@dataclass(slots=True)
class _Waiting:
    """One write that waits: a merged change, or another call."""

    operation: str
    write: Callable[[], Awaitable[object]]
    change: StateChange | None = None
    deliveries: int = 0


def merge(into: StateChange, change: StateChange) -> None:
    """Add `change` to `into`, as if both were written in one transaction, in order."""
    # An incident opened in `into` and changed since is saved too: should the store already
    # hold it (a write that succeeded but was reported failed), its opening is skipped and
    # its save still writes it as it is now.
    saved = {incident.id for incident in into.saved}
    into.opened.extend(change.opened)
    into.saved.extend(incident for incident in change.saved if incident.id not in saved)
    into.outbox.extend(change.outbox)
    into.acknowledgements_applied.extend(change.acknowledgements_applied)
    memories = {memory.check: memory for memory in into.memories}
    for memory in change.memories:
        memories[memory.check] = memory
    forgotten = set(change.forgotten)
    into.memories = [memory for check, memory in memories.items() if check not in forgotten]
    into.forgotten = [*(check for check in into.forgotten if check not in memories), *change.forgotten]
    into.epoch = change.epoch if change.epoch is not None else into.epoch


class GuardedStore:
    def __init__(self, store: StateStore, metrics: MonitorMetrics, clock: Clock) -> None:
        self.inner = store
        self.display = store.display
        self.problem: str | None = None
        """Why writes fail, while they do; None when the store is healthy."""
        self._metrics = metrics
        self._clock = clock
        self._backlog: list[_Waiting] = []
        self._draining = asyncio.Lock()
        self._in_flight: _Waiting | None = None
        self._last_silences: list[Silence] = []
        self._waiting_delivery_writes = 0
        self._logged_at: float | None = None
        self._suppressed = 0
        self.on_stale: Callable[[StaleEpoch], None] = lambda _exc: None
        """Told of every StaleEpoch the store raises, before the caller."""

    # Writes

    async def record(self, change: StateChange) -> RecordOutcome:
        if not change:
            return RecordOutcome()
        last = self._backlog[-1] if self._backlog else None
        if last is not None and last.change is not None and last is not self._in_flight:
            # Written together with the change that already waits, after it.
            self._merge_into_last(change)
            await self._drain("record")
            return RecordOutcome()
        written, outcome = await self._write("record", lambda: self._fenced(lambda: self.inner.record(change)),
                                             keep=False)
        if written and outcome is not None:
            return outcome
        self._keep_change(change)
        return RecordOutcome()

    def _keep_change(self, change: StateChange) -> None:
        kept = StateChange()
        merge(kept, self._within_limit(change))
        waiting = _Waiting("record", lambda: self._fenced(lambda: self.inner.record(kept)), kept, len(kept.outbox))
        self._backlog.append(waiting)

    def _merge_into_last(self, change: StateChange) -> None:
        last = self._backlog[-1]
        assert last.change is not None
        change = self._within_limit(change)
        merge(last.change, change)
        last.deliveries += len(change.outbox)

    def _within_limit(self, change: StateChange) -> StateChange:
        """The change with the outbox rows past the limit of waiting ones dropped (they still go out), counted."""
        room = max(MAX_WAITING_DELIVERY_WRITES - self._waiting_delivery_writes, 0)
        if len(change.outbox) > room:
            self._metrics.state_store_errors.labels(operation="dropped").inc(len(change.outbox) - room)
            change = replace(change, outbox=change.outbox[:room])
        self._waiting_delivery_writes += len(change.outbox)
        return change

    async def enqueue(self, entries: list[OutboxEntry]) -> list[bool]:
        written, fresh = await self._write("enqueue", lambda: self.inner.enqueue(entries), deliveries=len(entries))
        return fresh if written and fresh is not None else [True] * len(entries)

    async def claim(self, notification_id: str, sink: str, holder: str, seconds: float,
                    epoch: int | None = None, token: str | None = None) -> Claim:
        """While the store cannot be reached, claimed (delivered from memory; a replica that
        cannot reach the store stops leading within its lease anyway)."""
        try:
            return await self._fenced(lambda: self.inner.claim(notification_id, sink, holder, seconds, epoch, token))
        except StoreUnavailable as exc:
            self._failed("claim", exc)
            return UNSHARED_CLAIM

    async def record_attempt(self, notification_id: str, sink: str, error: str | None,
                             token: str | None = None) -> None:
        await self._write(
            "record_attempt", lambda: self.inner.record_attempt(notification_id, sink, error, token), deliveries=1
        )

    async def finish(self, notification_id: str, sink: str, state: DeliveryState, at: datetime,
                     error: str | None = None, token: str | None = None) -> None:
        await self._write(
            "finish", lambda: self.inner.finish(notification_id, sink, state, at, error, token), deliveries=1
        )

    async def request_acknowledgement(self, incident_id: int, at: datetime, by: str, note: str) -> None:
        await self._write(
            "request_acknowledgement", lambda: self.inner.request_acknowledgement(incident_id, at, by, note)
        )

    async def add_silence(self, check: str, starts_at: datetime, ends_at: datetime, reason: str) -> Silence:
        # The API's way in: a failure is the caller's to report, so it raises.
        return await self.inner.add_silence(check, starts_at, ends_at, reason)

    async def remove_silence(self, silence_id: int) -> bool:
        return await self.inner.remove_silence(silence_id)

    async def prune(self, before: datetime, limit: int = PRUNE_BATCH) -> int:
        result = await self._call("prune", lambda: self.inner.prune(before, limit))
        return result if isinstance(result, int) else 0

    async def checkpoint(self) -> None:
        await self._call("checkpoint", self.inner.checkpoint)

    async def retry(self) -> None:
        """Write what waits, if the store takes writes again."""
        await self._drain()

    def forget_waiting(self) -> None:
        """Drop the writes that wait (a leader stepping down: its term's decisions are over)."""
        if self._backlog:
            log.warning("store.waiting_writes_dropped", store=self.display, writes=len(self._backlog))
        self._backlog.clear()
        self._waiting_delivery_writes = 0

    # Reads

    async def last_incident_id(self) -> int:
        return await self._read("last_incident_id", self.inner.last_incident_id, 0)

    async def check_memories(self) -> list[CheckMemory]:
        return await self._read("check_memories", self.inner.check_memories, [])

    async def get_incident(self, incident_id: int) -> Incident | None:
        return await self._read("get_incident", lambda: self.inner.get_incident(incident_id), None)

    async def open_incidents(self) -> list[Incident]:
        return await self._read("open_incidents", self.inner.open_incidents, [])

    async def recent_incidents(self, limit: int = 100) -> list[Incident]:
        return await self._read("recent_incidents", lambda: self.inner.recent_incidents(limit), [])

    async def pending_deliveries(self) -> list[Delivery]:
        return await self._read("pending_deliveries", self.inner.pending_deliveries, [])

    async def oldest_pending(self) -> datetime | None:
        return await self._read("oldest_pending", self.inner.oldest_pending, None)

    async def deliveries_for(self, incident_id: int) -> list[Delivery]:
        return await self._read("deliveries_for", lambda: self.inner.deliveries_for(incident_id), [])

    async def unapplied_acknowledgements(self) -> list[Acknowledgement]:
        return await self._read("unapplied_acknowledgements", self.inner.unapplied_acknowledgements, [])

    async def silences(self, now: datetime) -> list[Silence]:
        """While the store cannot be read, the silences last read (still active at `now`)."""
        try:
            self._last_silences = await self.inner.silences(now)
        except StoreUnavailable as exc:
            self._failed("silences", exc)
        return [silence for silence in self._last_silences if silence.ends_at > now]

    async def schema_version(self) -> int:
        return await self._read("schema_version", self.inner.schema_version, 0)

    async def close(self) -> None:
        await self._drain()
        if self._backlog:
            log.error("store.unwritten_at_shutdown", store=self.display, writes=len(self._backlog),
                      error=self.problem)
        await self._call("close", self.inner.close)

    # The guard

    async def _write(
        self, operation: str, write: Callable[[], Awaitable[T]], keep: bool = True, deliveries: int = 0
    ) -> tuple[bool, T | None]:
        """Run `write` after what waits: (True, its result), or (False, None) when it could not
        run, and then it waits too if `keep`."""
        if (not self._backlog and not self._draining.locked()) or await self._drain(operation):
            try:
                return True, await write()
            except StoreUnavailable as exc:
                self._failed(operation, exc)
        if keep:
            self._keep(operation, write, deliveries)
        return False, None

    def _keep(self, operation: str, write: Callable[[], Awaitable[object]], deliveries: int) -> None:
        if deliveries and self._waiting_delivery_writes + deliveries > MAX_WAITING_DELIVERY_WRITES:
            self._metrics.state_store_errors.labels(operation="dropped").inc()
            return
        self._waiting_delivery_writes += deliveries
        self._backlog.append(_Waiting(operation, write, deliveries=deliveries))

    async def _drain(self, operation: str = "retry") -> bool:
        """Write what waits, in order; False when the store still refuses (counted under `operation`)."""
        async with self._draining:
            while self._backlog:
                waiting = self._in_flight = self._backlog[0]
                try:
                    await waiting.write()
                except StoreUnavailable as exc:
                    self._failed(operation, exc)
                    return False
                finally:
                    self._in_flight = None
                self._backlog.pop(0)
                self._waiting_delivery_writes -= waiting.deliveries
        if self.problem is not None:
            log.warning("store.recovered", store=self.display, was=self.problem)
            self.problem = None
            self._logged_at = None
        return True

    async def _read(self, operation: str, read: Callable[[], Awaitable[T]], empty: T) -> T:
        try:
            return await read()
        except StoreUnavailable as exc:
            self._failed(operation, exc)
            return empty

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T | None:
        try:
            return await call()
        except StoreUnavailable as exc:
            self._failed(operation, exc)
            return None

    async def _fenced(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except StaleEpoch as exc:
            self.on_stale(exc)
            raise

    def _failed(self, operation: str, exc: BaseException) -> None:
        self.problem = str(exc) or type(exc).__name__
        self._metrics.state_store_errors.labels(operation=operation).inc()
        now = self._clock.monotonic()
        if self._logged_at is not None and now - self._logged_at < LOG_EVERY_SECONDS:
            self._suppressed += 1
            return
        log.error(
            "store.write_failed" if operation not in _READS else "store.read_failed",
            store=self.display,
            operation=operation,
            error=self.problem,
            waiting_writes=len(self._backlog),
            failures_not_logged=self._suppressed,
        )
        self._logged_at = now
        self._suppressed = 0


_READS = frozenset(
    {"get_incident", "open_incidents", "recent_incidents", "pending_deliveries", "deliveries_for",
     "unapplied_acknowledgements", "silences", "last_incident_id", "check_memories", "schema_version",
     "oldest_pending"}
)
