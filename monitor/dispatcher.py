"""Delivery through a durable outbox: every notification is written to the state store for each
sink before it is sent (by the recorder, in the transaction of the change that decided it:
`address` says which rows, `hand_over` queues them once written), delivered through one
queue and worker per sink (a dead SMTP server never delays Slack), retried with exponential
backoff and jitter, honouring a sink's Retry-After, until it is older than the sink's
`max_age`, then dead-lettered (kept in the store, logged, counted). Deliveries still pending
when the daemon stops, or dies, are resumed at the next start.

Each sink's queue serves the most severe first and is bounded (monitor/sink_queue.py); what it
sheds is recorded in the outbox as `shed`. Notifications of a kind that floods, waiting
together, go out as one grouped message, and each incident it announces is recorded as
delivered. The store may fail (a full disk): the dispatcher is handed a guarded store
(monitor/store_guard.py) and delivers from memory; a worker never dies.

Replicas share the outbox: before each attempt the worker claims the row (`StateStore.claim`,
under the leader's epoch, for one attempt's time) and finishes it with the claim's token, so a
leader that lost its term finishes nothing, and a row a dead leader had claimed waits for
that claim to run out before the next leader sends it (at least once, twice at most: the
attempt the dead leader had in flight). SQLite's claims are always granted."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from alerting.base import DeliveryError, Notification, NotificationKind, Sink
from monitor.clock import Clock
from monitor.metrics import MonitorMetrics
from monitor.scrub import scrub
from monitor.sink_queue import DEFAULT_GROUP_AT, SinkQueue, priority
from monitor.store import DeliveryState, Epoch, OutboxEntry, StaleEpoch, StateStore, no_epoch

log = structlog.get_logger("monitor.dispatcher")

_backoff = wait_exponential_jitter(initial=1, max=60)
_SAFETY_MARGIN_SECONDS = 5.0
_SHED_LOG_EVERY_SECONDS = 60.0
CLAIM_POLL_SECONDS = 1.0
"""How often a worker asks again for a row another replica's claim holds."""


class ClaimLost(Exception):
    """Between two attempts, another replica finished the notification."""


def _retryable(exc: BaseException) -> bool:
    # tenacity hands over every BaseException; a cancellation (shutdown) must end the loop.
    if not isinstance(exc, Exception) or isinstance(exc, (StaleEpoch, ClaimLost)):
        return False
    return not isinstance(exc, DeliveryError) or exc.retryable


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, DeliveryError) and exc.retry_after is not None:
        return exc.retry_after
    return _backoff(state)


def grouped(batch: list[Notification]) -> Notification:
    """One message announcing every notification of `batch` (all of one kind): initial
    alerts become a GROUPED message, resolutions and status updates keep their kind."""
    if len(batch) == 1:
        return batch[0]
    first = min(batch, key=priority)
    kind = NotificationKind.GROUPED if first.kind is NotificationKind.INITIAL else first.kind
    return first.model_copy(
        update={
            "id": f"group:{kind.value}:{batch[0].id}:{len(batch)}",
            "kind": kind,
            "group": tuple(notification.incident for notification in batch),
            "created_at": min(notification.created_at for notification in batch),
        }
    )


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A notification on its way out, and who hears it."""

    notification: Notification
    audience: set[str] | None = None
    """The sinks that may hear it; None for every sink."""
    together: str | None = None
    """Notifications submitted together under one key go out as one message."""


@dataclass(frozen=True, slots=True)
class Addressed:
    """One notification for one sink that wants it: one outbox row, one place in its queue."""

    sink: str
    notification: Notification
    together: str | None = None

    def outbox_entry(self) -> OutboxEntry:
        notification = self.notification
        return OutboxEntry(
            notification.id, self.sink, notification.incident.id, notification.kind.value,
            notification.model_dump_json(), notification.created_at,
        )


class Dispatcher:
    def __init__(
        self,
        sinks: dict[str, Sink],
        store: StateStore,
        metrics: MonitorMetrics,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        group_at: int = DEFAULT_GROUP_AT,
        holder: str = "",
        epoch: Epoch = no_epoch,
    ) -> None:
        self._group_at = group_at
        self._holder = holder
        self._epoch = epoch
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._sinks: dict[str, Sink] = {}
        self._queues: dict[str, SinkQueue] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._shed_logged_at: dict[str, float] = {}
        self._recording: set[asyncio.Task[None]] = set()
        self.replace_sinks(sinks)

    @property
    def sinks(self) -> dict[str, Sink]:
        return dict(self._sinks)

    def queued(self, sink: str) -> int:
        return len(self._queues[sink])

    def group_at(self, count: int) -> None:
        """Group the initial alerts, resolutions or status updates once `count` of a kind wait for a sink."""
        self._group_at = count
        for queue in self._queues.values():
            queue.group_at = count

    def replace_sinks(self, sinks: dict[str, Sink]) -> None:
        """Adopt a new set of sinks; notifications already queued for a kept sink stay queued."""
        for name in set(self._sinks) - set(sinks):
            self._workers.pop(name).cancel()
            self._metrics.notifications_pending.dec(len(self._queues.pop(name)))
        for name, sink in sinks.items():
            if name not in self._queues:
                self._queues[name] = SinkQueue(sink.config.max_queued, self._group_at)
                self._workers[name] = asyncio.create_task(self._work(name), name=f"sink:{name}")
            self._queues[name].limit = sink.config.max_queued
        self._sinks = dict(sinks)

    def address(self, outgoing: list[Outgoing]) -> list[Addressed]:
        """Each notification for every sink of its audience that wants it (pure)."""
        return [
            Addressed(name, item.notification, item.together)
            for item in outgoing
            for name, sink in self._sinks.items()
            if (item.audience is None or name in item.audience) and sink.config.wants(item.notification)
        ]

    async def hand_over(self, addressed: list[Addressed]) -> None:
        """Queue notifications whose outbox rows are recorded (by the recorder's transaction)."""
        shed = [(item.sink, dropped) for item in addressed
                if (dropped := self._queue(item.sink, item.notification, item.together)) is not None]
        await self._record_shed(shed)

    async def submit(self, outgoing: list[Outgoing]) -> None:
        """Record, then queue, notifications decided outside a recorded change (a page re-sent
        at start): one already recorded for a sink is not sent to it again."""
        addressed = self.address(outgoing)
        if not addressed:
            return
        fresh = await self._store.enqueue([item.outbox_entry() for item in addressed])
        await self.hand_over([item for item, new in zip(addressed, fresh, strict=True) if new])

    async def resume(self) -> None:
        """Queue again what a previous run left pending."""
        shed = []
        for delivery in await self._store.pending_deliveries():
            if delivery.sink not in self._sinks:
                await self._store.finish(delivery.notification_id, delivery.sink, "dead", self._clock.now(),
                                         "sink no longer configured")
                continue
            dropped = self._queue(delivery.sink, Notification.model_validate_json(delivery.document))
            if dropped is not None:
                shed.append((delivery.sink, dropped))
        await self._record_shed(shed)

    def _queue(self, sink: str, notification: Notification, together: str | None = None) -> Notification | None:
        """Queue it; the notification the full queue shed for it, if any."""
        if sink not in self._queues:
            return None  # removed by a reload between the decision and now
        shed = self._queues[sink].put(notification, together)
        if shed is None:
            self._metrics.notifications_pending.inc()
        return shed  # one in, one out (maybe the same): the pending count stays

    async def _record_shed(self, shed: list[tuple[str, Notification]]) -> None:
        for sink, notification in shed:
            reason = f"shed: {len(self._queues[sink])} notifications queued for the sink, more severe ones kept"
            await self._store.finish(notification.id, sink, "shed", self._clock.now(), reason)
            self._metrics.notifications.labels(sink=sink, result="shed").inc()
            now = self._clock.monotonic()
            last = self._shed_logged_at.get(sink)
            if last is None or now - last >= _SHED_LOG_EVERY_SECONDS:
                self._shed_logged_at[sink] = now
                log.warning("notification.shed", sink=sink, notification=notification.id,
                            severity=notification.incident.severity.value, queued=len(self._queues[sink]))

    async def idle(self) -> None:
        """Wait until every queued notification is delivered or given up, its outcome recorded."""
        await asyncio.gather(*(queue.join() for queue in self._queues.values()))
        while self._recording:
            await asyncio.gather(*self._recording)

    async def drain(self, timeout: float) -> None:
        """Wait up to `timeout` for queued notifications, then stop the workers."""
        try:
            async with asyncio.timeout(timeout):
                await self.idle()
        except TimeoutError:
            log.warning("notifications.undelivered_at_shutdown", pending=sum(len(q) for q in self._queues.values()))
        for worker in self._workers.values():
            worker.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)

    async def _work(self, name: str) -> None:
        queue = self._queues[name]
        while True:
            batch = await queue.get()
            try:
                await self._deliver(self._sinks[name], batch)
            except Exception:
                log.exception("notification.worker_error", sink=name, notification=batch[0].id)
            finally:
                self._metrics.notifications_pending.dec(len(batch))
                queue.task_done()

    async def _claim(self, sink: Sink, batch: list[Notification], tokens: dict[str, str | None]) -> list[Notification]:
        """Claim each notification of `batch` for one attempt (renewing the claims in `tokens`);
        the notifications still to send (another replica finished the rest). Waits while
        another replica's claim holds one. StaleEpoch when this replica no longer leads."""
        seconds = sink.config.timeout + _SAFETY_MARGIN_SECONDS
        while True:
            kept, busy = [], False
            for item in batch:
                claim = await self._store.claim(
                    item.id, sink.name, self._holder, seconds, self._epoch(), tokens.get(item.id)
                )
                if claim.outcome == "claimed":
                    tokens[item.id] = claim.token
                    kept.append(item)
                elif claim.outcome == "busy":
                    busy = True
            if not busy:
                return kept
            await self._sleep(CLAIM_POLL_SECONDS)

    async def _deliver(self, sink: Sink, batch: list[Notification]) -> None:
        tokens: dict[str, str | None] = {}
        try:
            batch = await self._claim(sink, batch, tokens)
        except StaleEpoch:
            return  # another replica leads: it delivers this
        if not batch:
            return
        notification = grouped(batch)

        def too_old(_: RetryCallState) -> bool:
            return (self._clock.now() - notification.created_at).total_seconds() >= sink.config.max_age

        async def attempt_failed(state: RetryCallState) -> None:
            await self._attempt_failed(sink, batch, state, tokens)

        retrying = AsyncRetrying(
            stop=too_old,
            wait=_wait,
            retry=retry_if_exception(_retryable),
            before_sleep=attempt_failed,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1 and await self._claim(sink, batch, tokens) != batch:
                        raise ClaimLost(notification.id)
                    async with asyncio.timeout(sink.config.timeout + _SAFETY_MARGIN_SECONDS):
                        await sink.send(notification)
        except (StaleEpoch, ClaimLost):
            return  # another replica leads, or finished it: not ours to send nor to record
        except Exception as exc:  # noqa: BLE001 - a sink's failure is logged and counted, never raised
            self._finish(sink, batch, "dead", tokens, _describe(exc))
            log.error(
                "notification.dead",
                sink=sink.name,
                notification=notification.id,
                incidents=[item.incident.id for item in batch],
                error=_describe(exc),
            )
            return
        self._finish(sink, batch, "sent", tokens)
        age = (self._clock.now() - notification.created_at).total_seconds()
        self._metrics.notification_delivery.labels(sink=sink.name).observe(max(age, 0.0))
        log.info("notification.sent", sink=sink.name, notification=notification.id, kind=notification.kind.value,
                 incidents=len(batch))

    def _finish(
        self, sink: Sink, batch: list[Notification], state: DeliveryState, tokens: dict[str, str | None],
        error: str | None = None,
    ) -> None:
        """Count the outcome and have it recorded for every notification the message carried (a
        grouped one, each), while the sink's worker goes on to the next: the store's writes keep
        their order, and `idle` waits for them. Each finish carries its claim's token."""
        self._metrics.notifications.labels(sink=sink.name, result=state).inc(len(batch))
        recording = asyncio.create_task(
            self._record_outcome(sink.name, batch, state, self._clock.now(), error, dict(tokens))
        )
        self._recording.add(recording)
        recording.add_done_callback(self._recording.discard)

    async def _record_outcome(
        self, sink: str, batch: list[Notification], state: DeliveryState, at: datetime, error: str | None,
        tokens: dict[str, str | None],
    ) -> None:
        try:
            for item in batch:
                await self._store.finish(item.id, sink, state, at, error, tokens.get(item.id))
        except Exception:  # a store that raises (unguarded) costs the record, never the delivery
            log.exception("notification.outcome_not_recorded", sink=sink, notification=batch[0].id)

    async def _attempt_failed(
        self, sink: Sink, batch: list[Notification], state: RetryCallState, tokens: dict[str, str | None]
    ) -> None:
        self._metrics.notifications.labels(sink=sink.name, result="failed").inc()
        exc = state.outcome.exception() if state.outcome else None
        for item in batch:
            await self._store.record_attempt(item.id, sink.name, _describe(exc), tokens.get(item.id))
        log.warning(
            "notification.retry",
            sink=sink.name,
            notification=grouped(batch).id,
            attempt=state.attempt_number,
            wait_seconds=round(state.upcoming_sleep, 2),
            error=_describe(exc),
        )


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, DeliveryError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return scrub(f"{type(exc).__name__}: {exc}") if exc else "unknown error"
