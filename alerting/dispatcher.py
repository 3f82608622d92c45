"""Delivery through a durable outbox: every notification is written to the state store for
each sink before it is sent, delivered through one queue and worker per sink (a dead SMTP
server never delays Slack; messages to one sink stay in order), retried with exponential
backoff and jitter, honouring a sink's Retry-After, until it is older than the sink's
`max_age`, then dead-lettered (kept in the store, logged, counted). Deliveries still pending
when the daemon stops, or dies, are resumed at the next start."""

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from alerting.base import DeliveryError, Notification, Sink
from monitor.clock import Clock
from monitor.metrics import MonitorMetrics
from monitor.store import StateStore

log = structlog.get_logger("alerting.dispatcher")

_backoff = wait_exponential_jitter(initial=1, max=60)
_SAFETY_MARGIN_SECONDS = 5.0


def _retryable(exc: BaseException) -> bool:
    # tenacity hands over every BaseException; a cancellation (shutdown) must end the loop.
    if not isinstance(exc, Exception):
        return False
    return not isinstance(exc, DeliveryError) or exc.retryable


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, DeliveryError) and exc.retry_after is not None:
        return exc.retry_after
    return _backoff(state)


class Dispatcher:
    def __init__(
        self,
        sinks: dict[str, Sink],
        store: StateStore,
        metrics: MonitorMetrics,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._sinks: dict[str, Sink] = {}
        self._queues: dict[str, asyncio.Queue[Notification]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self.replace_sinks(sinks)

    @property
    def sinks(self) -> dict[str, Sink]:
        return dict(self._sinks)

    def replace_sinks(self, sinks: dict[str, Sink]) -> None:
        """Adopt a new set of sinks; notifications already queued for a kept sink stay queued."""
        for name in set(self._sinks) - set(sinks):
            self._workers.pop(name).cancel()
            self._queues.pop(name)
        for name in sinks:
            if name not in self._queues:
                self._queues[name] = asyncio.Queue()
                self._workers[name] = asyncio.create_task(self._work(name), name=f"sink:{name}")
        self._sinks = dict(sinks)

    def submit(self, notification: Notification, audience: set[str] | None = None) -> None:
        """Persist, then queue, the notification for every sink in `audience` (default: all)
        that wants it."""
        document = notification.model_dump_json()
        for name, sink in self._sinks.items():
            if (audience is not None and name not in audience) or not sink.config.wants(notification):
                continue
            fresh = self._store.enqueue(
                notification.id, name, notification.incident.id, notification.kind.value, document,
                notification.created_at,
            )
            if fresh:
                self._queue(name, notification)

    def resume(self) -> None:
        """Queue again what a previous run left pending."""
        for delivery in self._store.pending_deliveries():
            if delivery.sink not in self._sinks:
                self._store.finish(delivery.notification_id, delivery.sink, "dead", self._clock.now(),
                                   "sink no longer configured")
                continue
            self._queue(delivery.sink, Notification.model_validate_json(delivery.document))

    def _queue(self, sink: str, notification: Notification) -> None:
        self._queues[sink].put_nowait(notification)
        self._metrics.notifications_pending.inc()

    async def drain(self, timeout: float) -> None:
        """Wait up to `timeout` for queued notifications, then stop the workers."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(queue.join() for queue in self._queues.values()))
        except TimeoutError:
            log.warning("notifications.undelivered_at_shutdown", pending=sum(q.qsize() for q in self._queues.values()))
        for worker in self._workers.values():
            worker.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)

    async def _work(self, name: str) -> None:
        queue = self._queues[name]
        while True:
            notification = await queue.get()
            try:
                await self._deliver(self._sinks[name], notification)
            finally:
                self._metrics.notifications_pending.dec()
                queue.task_done()

    async def _deliver(self, sink: Sink, notification: Notification) -> None:
        def too_old(_: RetryCallState) -> bool:
            return (self._clock.now() - notification.created_at).total_seconds() >= sink.config.max_age

        retrying = AsyncRetrying(
            stop=too_old,
            wait=_wait,
            retry=retry_if_exception(_retryable),
            before_sleep=lambda state: self._attempt_failed(sink, notification, state),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with asyncio.timeout(sink.config.timeout + _SAFETY_MARGIN_SECONDS):
                        await sink.send(notification)
        except Exception as exc:  # noqa: BLE001 - a sink's failure is logged and counted, never raised
            self._store.finish(notification.id, sink.name, "dead", self._clock.now(), _describe(exc))
            self._metrics.notifications.labels(sink=sink.name, result="dead").inc()
            log.error(
                "notification.dead",
                sink=sink.name,
                notification=notification.id,
                incident=notification.incident.id,
                error=_describe(exc),
            )
            return
        self._store.finish(notification.id, sink.name, "sent", self._clock.now())
        self._metrics.notifications.labels(sink=sink.name, result="sent").inc()
        age = (self._clock.now() - notification.created_at).total_seconds()
        self._metrics.notification_delivery.labels(sink=sink.name).observe(max(age, 0.0))
        log.info("notification.sent", sink=sink.name, notification=notification.id, kind=notification.kind.value)

    def _attempt_failed(self, sink: Sink, notification: Notification, state: RetryCallState) -> None:
        self._metrics.notifications.labels(sink=sink.name, result="failed").inc()
        exc = state.outcome.exception() if state.outcome else None
        self._store.record_attempt(notification.id, sink.name, _describe(exc))
        log.warning(
            "notification.retry",
            sink=sink.name,
            notification=notification.id,
            attempt=state.attempt_number,
            wait_seconds=round(state.upcoming_sleep, 2),
            error=_describe(exc),
        )


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, DeliveryError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if exc else "unknown error"
