"""The state store as the daemon uses it: a call that fails (a full disk, an I/O error) never
raises. A read answers empty; a write is kept, in order, and written again once the store
takes writes (a later write, or `retry()` from the daemon's tick); until then `problem`
says why, which `/readyz` and the monitor's own incident report. Each failure is counted
(`health_monitor_state_store_errors_total{operation}`) and logged at most once a minute.

A notification that cannot be recorded is still delivered (`enqueue` answers True): a
page that cannot be recorded is better than no page."""

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import structlog

from monitor.clock import Clock
from monitor.metrics import MonitorMetrics
from monitor.model import Incident
from monitor.store import PRUNE_BATCH, Acknowledgement, Delivery, DeliveryState, Silence, StateStore

log = structlog.get_logger("monitor.store")

LOG_EVERY_SECONDS = 60.0
MAX_WAITING_DELIVERY_WRITES = 100_000
"""Outbox writes kept while the store refuses them (about 200 MB of documents); past that a
delivery's record is dropped (counted, logged) and the notification still goes out. Incident
writes are always kept: one per incident waits at most."""
_OUTBOX_WRITES = frozenset({"enqueue", "record_attempt", "finish"})
STORE_ERRORS = (sqlite3.Error, OSError)

T = TypeVar("T")


class GuardedStore:
    def __init__(self, store: StateStore, metrics: MonitorMetrics, clock: Clock, *, path: str = "") -> None:
        self.inner = store
        self.path = path
        self.problem: str | None = None
        """Why writes fail, while they do; None when the store is healthy."""
        self._metrics = metrics
        self._clock = clock
        self._backlog: list[Callable[[], object]] = []
        self._waiting_delivery_writes = 0
        self._saves_waiting: set[int] = set()
        self._logged_at: float | None = None
        self._suppressed = 0
        newest = self._read("recent_incidents", lambda: store.recent_incidents(1), [])
        self._last_id = newest[0].id if newest else 0

    # Writes

    def create_incident(self, incident: Incident) -> Incident:
        written, stored = self._write("create_incident", lambda: self.inner.create_incident(incident), keep=False)
        if written and stored is not None:
            self._last_id = max(self._last_id, stored.id)
            return stored
        # Given the next id now, and written under it later; the store is this process's alone.
        self._last_id += 1
        provisional = incident.model_copy(update={"id": self._last_id})
        self._backlog.append(lambda: self.inner.create_incident(provisional))
        return provisional

    def save_incident(self, incident: Incident) -> None:
        if incident.id in self._saves_waiting:
            return  # the waiting save writes the incident as it is when it runs

        def save() -> None:
            self.inner.save_incident(incident)
            self._saves_waiting.discard(incident.id)

        written, _ = self._write("save_incident", save, keep=False)
        if not written:
            self._saves_waiting.add(incident.id)
            self._backlog.append(save)

    def save_incidents(self, incidents: list[Incident]) -> None:
        waiting = [incident for incident in incidents if incident.id not in self._saves_waiting]
        if not waiting:
            return

        def save() -> None:
            self.inner.save_incidents(waiting)
            self._saves_waiting.difference_update(incident.id for incident in waiting)

        written, _ = self._write("save_incidents", save, keep=False)
        if not written:
            self._saves_waiting.update(incident.id for incident in waiting)
            self._backlog.append(save)

    def enqueue(self, notification_id: str, sink: str, incident_id: int, kind: str, document: str,
                created_at: datetime) -> bool:
        written, fresh = self._write(
            "enqueue", lambda: self.inner.enqueue(notification_id, sink, incident_id, kind, document, created_at)
        )
        return bool(fresh) if written else True

    def record_attempt(self, notification_id: str, sink: str, error: str | None) -> None:
        self._write("record_attempt", lambda: self.inner.record_attempt(notification_id, sink, error))

    def finish(self, notification_id: str, sink: str, state: DeliveryState, at: datetime,
               error: str | None = None) -> None:
        self._write("finish", lambda: self.inner.finish(notification_id, sink, state, at, error))

    def request_acknowledgement(self, incident_id: int, at: datetime, by: str, note: str) -> None:
        self._write("request_acknowledgement", lambda: self.inner.request_acknowledgement(incident_id, at, by, note))

    def mark_acknowledgement_applied(self, seq: int) -> None:
        self._write("mark_acknowledgement_applied", lambda: self.inner.mark_acknowledgement_applied(seq))

    def add_silence(self, check: str, starts_at: datetime, ends_at: datetime, reason: str) -> Silence:
        # The API's way in: a failure is the caller's to report, so it raises.
        return self.inner.add_silence(check, starts_at, ends_at, reason)

    def remove_silence(self, silence_id: int) -> bool:
        return self.inner.remove_silence(silence_id)

    def prune(self, before: datetime, limit: int = PRUNE_BATCH) -> int:
        result = self._call("prune", lambda: self.inner.prune(before, limit))
        return result if isinstance(result, int) else 0

    def checkpoint(self) -> None:
        self._call("checkpoint", self.inner.checkpoint)

    def retry(self) -> None:
        """Write what waits, if the store takes writes again."""
        self._drain()

    # Reads

    def get_incident(self, incident_id: int) -> Incident | None:
        return self._read("get_incident", lambda: self.inner.get_incident(incident_id), None)

    def open_incidents(self) -> list[Incident]:
        return self._read("open_incidents", self.inner.open_incidents, [])

    def recent_incidents(self, limit: int = 100) -> list[Incident]:
        return self._read("recent_incidents", lambda: self.inner.recent_incidents(limit), [])

    def pending_deliveries(self) -> list[Delivery]:
        return self._read("pending_deliveries", self.inner.pending_deliveries, [])

    def deliveries_for(self, incident_id: int) -> list[Delivery]:
        return self._read("deliveries_for", lambda: self.inner.deliveries_for(incident_id), [])

    def unapplied_acknowledgements(self) -> list[Acknowledgement]:
        return self._read("unapplied_acknowledgements", self.inner.unapplied_acknowledgements, [])

    def silences(self, now: datetime) -> list[Silence]:
        return self._read("silences", lambda: self.inner.silences(now), [])

    def close(self) -> None:
        self._drain()
        if self._backlog:
            log.error("store.unwritten_at_shutdown", path=self.path, writes=len(self._backlog), error=self.problem)
        self._call("close", self.inner.close)

    # The guard

    def _write(self, operation: str, write: Callable[[], T], keep: bool = True) -> tuple[bool, T | None]:
        """Run `write` after what waits: (True, its result), or (False, None) when it could not
        run, and then it waits too if `keep`."""
        if self._drain(operation):
            try:
                return True, write()
            except STORE_ERRORS as exc:
                self._failed(operation, exc)
        if keep:
            self._keep(operation, write)
        return False, None

    def _keep(self, operation: str, write: Callable[[], object]) -> None:
        if operation not in _OUTBOX_WRITES:
            self._backlog.append(write)
            return
        if self._waiting_delivery_writes >= MAX_WAITING_DELIVERY_WRITES:
            self._metrics.state_store_errors.labels(operation="dropped").inc()
            return

        def counted() -> object:
            result = write()
            self._waiting_delivery_writes -= 1
            return result

        self._waiting_delivery_writes += 1
        self._backlog.append(counted)

    def _drain(self, operation: str = "retry") -> bool:
        """Write what waits, in order; False when the store still refuses (counted under `operation`)."""
        while self._backlog:
            try:
                self._backlog[0]()
            except sqlite3.IntegrityError as exc:
                # Written meanwhile (by an earlier, half-failed attempt): nothing left to write.
                log.warning("store.retry_skipped", path=self.path, error=str(exc))
            except STORE_ERRORS as exc:
                self._failed(operation, exc)
                return False
            self._backlog.pop(0)
        if self.problem is not None:
            log.warning("store.recovered", path=self.path, was=self.problem)
            self.problem = None
            self._logged_at = None
        return True

    def _read(self, operation: str, read: Callable[[], T], empty: T) -> T:
        try:
            return read()
        except STORE_ERRORS as exc:
            self._failed(operation, exc)
            return empty

    def _call(self, operation: str, call: Callable[[], T]) -> T | None:
        try:
            return call()
        except STORE_ERRORS as exc:
            self._failed(operation, exc)
            return None

    def _failed(self, operation: str, exc: BaseException) -> None:
        self.problem = str(exc) or type(exc).__name__
        self._metrics.state_store_errors.labels(operation=operation).inc()
        now = self._clock.monotonic()
        if self._logged_at is not None and now - self._logged_at < LOG_EVERY_SECONDS:
            self._suppressed += 1
            return
        log.error(
            "store.write_failed" if operation not in _READS else "store.read_failed",
            path=self.path,
            operation=operation,
            error=self.problem,
            waiting_writes=len(self._backlog),
            failures_not_logged=self._suppressed,
        )
        self._logged_at = now
        self._suppressed = 0


_READS = frozenset(
    {"get_incident", "open_incidents", "recent_incidents", "pending_deliveries", "deliveries_for",
     "unapplied_acknowledgements", "silences"}
)
