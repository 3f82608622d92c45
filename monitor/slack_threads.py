"""Where each incident's Slack thread is: the parent message's channel and `ts`, per sink.

Kept in the state store (table `slack_threads`, pruned with its incident), so that the replies
of an incident that opened before a restart, or on another replica, still land in its thread.
`ThreadStore` is the whole interface app mode needs (plugin-facing, through `alerting.base`);
`monitor.slack_thread_stores` implements it on the state file (migration 3) and on PostgreSQL
(`monitor.pg_side_schema`), and `MemoryThreads` where a sink is built without a store. A store that cannot answer raises
StoreUnavailable: the delivery fails and is retried."""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SlackThread:
    channel: str
    ts: str
    """The parent message's timestamp: the thread's id, and what chat.update edits."""


class ThreadStore(Protocol):
    async def thread(self, sink: str, incident_id: int) -> SlackThread | None:
        """The incident's thread at `sink`, if its parent message was posted."""

    async def remember(self, sink: str, incident_id: int, thread: SlackThread) -> None:
        """Keep the parent message just posted (replacing any earlier one)."""


class MemoryThreads:
    def __init__(self) -> None:
        self._threads: dict[tuple[str, int], SlackThread] = {}

    async def thread(self, sink: str, incident_id: int) -> SlackThread | None:
        return self._threads.get((sink, incident_id))

    async def remember(self, sink: str, incident_id: int, thread: SlackThread) -> None:
        self._threads[(sink, incident_id)] = thread
