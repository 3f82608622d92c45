"""The state store's contract: what the daemon keeps so that it survives a restart (incidents
and their timelines, the notification outbox, acknowledgements left by the CLI, silences, and
each check's threshold streaks and flapping memory), behind one async interface with two
implementations: SQLite, the embedded default (`monitor.sqlite_store`), and PostgreSQL
(`monitor.postgres_store`). The contract suite (tests/store_contract/) runs on both.

Every call is a coroutine and none blocks the event loop for more than a few milliseconds.
A state change decided by the incident core is written by `record` in one transaction:
the incidents it opens and changes, the outbox rows of the notifications it sends, the
acknowledgement requests it applied, and the check memories it changed. A crash before
the commit loses the whole change, never half of it."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from monitor.model import Incident

if TYPE_CHECKING:  # the contract stays free of sqlite3: the incident core imports it
    from monitor.migrations import Migration

DeliveryState = Literal["pending", "sent", "dead", "shed"]

PRUNE_BATCH = 500
"""Rows deleted per statement when pruning, so that no write waits long behind it."""


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    seq: int
    incident_id: int
    at: datetime
    by: str
    note: str


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    check: str
    starts_at: datetime
    ends_at: datetime
    reason: str

    def active_at(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification for one sink, as the outbox records it."""

    notification_id: str
    sink: str
    incident_id: int
    kind: str
    document: str
    state: DeliveryState
    attempts: int
    created_at: datetime
    finished_at: datetime | None
    last_error: str | None

_DELIVERY_COLUMNS = (
    "notification_id, sink, incident_id, kind, document, state, attempts, created_at, finished_at, last_error"
)


class StoreError(Exception):
    """The state store cannot be opened (missing, corrupt, refused, too new): one line that
    names the file or the database (never a password) and the cause."""


class StoreUnavailable(Exception):
    """A call failed because the store cannot be reached or written right now (a full disk,
    an I/O error, a lost connection that retries did not bring back); `GuardedStore`
    counts it and keeps the write for later."""


class StaleEpoch(Exception):
    """A write carried a leadership epoch that is no longer the current one: nothing was
    written, and the replica that sent it must step down. The one exception for it: the state
    store's `record` and `claim` raise it, and so does `monitor.cluster.fence.fenced_execute`."""


Epoch = Callable[[], int | None]
"""The leadership epoch stamped on every leader-only write (None: a store no replica shares)."""


def no_epoch() -> int | None:
    return None


ClaimOutcome = Literal["claimed", "busy", "finished"]


@dataclass(frozen=True, slots=True)
class Claim:
    """What `claim` found: "claimed" (attempt it now; finish it with `token`), "busy" (another
    replica's claim still runs: try again after it ends), "finished" (sent, dead or shed by
    someone: do not send it)."""

    outcome: ClaimOutcome
    token: str | None = None
    """None where no replica shares the store (SQLite), or the store could not be reached."""


UNSHARED_CLAIM = Claim("claimed")
"""The claim of a store no other replica writes: always granted."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One notification for one sink, recorded before it is attempted."""

    notification_id: str
    sink: str
    incident_id: int
    kind: str
    document: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CheckMemory:
    """What the incident core must remember about one check across a restart or a change of
    leader: its threshold streaks per code and its flapping history, as the core's own JSON
    document (the store does not read it)."""

    check: str
    document: str


@dataclass(slots=True)
class StateChange:
    """One batch of the incident core's decisions, as `record` writes it in one transaction."""

    opened: list[Incident] = field(default_factory=list)
    """New incidents, each with the id the core gave it (`next_incident_id`)."""
    saved: list[Incident] = field(default_factory=list)
    """Incidents already recorded, in their new state."""
    outbox: list[OutboxEntry] = field(default_factory=list)
    acknowledgements_applied: list[int] = field(default_factory=list)
    """`Acknowledgement.seq` of the requests applied."""
    memories: list[CheckMemory] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    """Checks whose memory goes (removed from the config)."""
    epoch: int | None = None
    """The leadership epoch the change was decided under; None for a store no replica shares
    (SQLite). A store that sees a newer epoch writes nothing and raises StaleEpoch."""

    def __bool__(self) -> bool:
        return bool(
            self.opened or self.saved or self.outbox or self.acknowledgements_applied
            or self.memories or self.forgotten
        )


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What `record` found: for each opened incident whose key already had an open incident
    (another writer opened it first; a unique index keeps one open incident per key), that
    incident, which the caller adopts in place of its own. The rest of the change is written."""

    adopted: dict[int, Incident] = field(default_factory=dict)
    """Keyed by the id the caller gave the incident it opened."""


class StateStore(Protocol):
    """The async state store. Implementations: monitor.sqlite_store.SqliteStore and
    monitor.postgres_store.PostgresStore; the contract suite is tests/store_contract/."""

    display: str
    """Where the state is, for messages and /readyz: a path, or a DSN without its password."""

    @property
    def migrated(self) -> list["Migration"]:
        """The schema migrations that opening this store applied (none when it was up to date)."""
        ...

    # The incident core's changes

    async def record(self, change: StateChange) -> RecordOutcome:
        """Write `change` in one transaction (nothing of it when it fails)."""
        ...

    async def last_incident_id(self) -> int:
        """The highest incident id ever recorded (0 for an empty store): the core numbers on from it."""
        ...

    async def check_memories(self) -> list[CheckMemory]: ...

    # Incidents

    async def get_incident(self, incident_id: int) -> Incident | None: ...

    async def open_incidents(self) -> list[Incident]:
        """Oldest first."""
        ...

    async def recent_incidents(self, limit: int = 100) -> list[Incident]:
        """Open and resolved incidents, newest first."""
        ...

    # The outbox

    async def enqueue(self, entries: list[OutboxEntry]) -> list[bool]:
        """Record deliveries outside a `record` (a grouped or re-sent notification); for each,
        False when it was already recorded."""
        ...

    async def claim(self, notification_id: str, sink: str, holder: str, seconds: float,
                    epoch: int | None = None, token: str | None = None) -> Claim:
        """Claim a pending delivery for `seconds` before an attempt (PostgreSQL: `FOR UPDATE
        SKIP LOCKED`, on the database's clock): a row whose claim ran out is taken again, and
        `token` renews a claim of ours. With `epoch`, StaleEpoch when it is not the leader's.
        SQLite: always claimed (one process)."""
        ...

    async def record_attempt(self, notification_id: str, sink: str, error: str | None,
                             token: str | None = None) -> None:
        """With `token`: only while the claim is still ours."""
        ...

    async def finish(self, notification_id: str, sink: str, state: DeliveryState, at: datetime,
                     error: str | None = None, token: str | None = None) -> None:
        """Record the final attempt and its outcome; with `token`, only while the claim is still ours."""
        ...

    async def oldest_pending(self) -> datetime | None:
        """When the oldest delivery not yet sent nor given up was recorded."""
        ...

    async def pending_deliveries(self) -> list[Delivery]:
        """Deliveries not yet sent nor given up, oldest first."""
        ...

    async def deliveries_for(self, incident_id: int) -> list[Delivery]: ...

    # Acknowledgements left by the CLI, the API or Slack for the daemon to apply

    async def request_acknowledgement(self, incident_id: int, at: datetime, by: str, note: str) -> None: ...

    async def unapplied_acknowledgements(self) -> list[Acknowledgement]: ...

    # Silences

    async def add_silence(self, check: str, starts_at: datetime, ends_at: datetime, reason: str) -> Silence: ...

    async def silences(self, now: datetime) -> list[Silence]:
        """Silences not removed and not yet over at `now`."""
        ...

    async def remove_silence(self, silence_id: int) -> bool: ...

    # Housekeeping

    async def prune(self, before: datetime, limit: int = PRUNE_BATCH) -> int:
        """Delete up to `limit` finished outbox rows and resolved incidents older than
        `before`; how many rows went (call again while it returns `limit`)."""
        ...

    async def checkpoint(self) -> None:
        """SQLite: fold the write-ahead log back into the file. PostgreSQL: nothing."""
        ...

    async def schema_version(self) -> int: ...

    async def close(self) -> None: ...


async def prune_expired(store: StateStore, before: datetime) -> int:
    """Delete finished deliveries and resolved incidents older than `before`, a small batch
    at a time so that checks and deliveries go on between batches, then checkpoint; how many
    rows went."""
    pruned = 0
    while (batch := await store.prune(before, PRUNE_BATCH)) > 0:
        pruned += batch
        await asyncio.sleep(0)
        if batch < PRUNE_BATCH:
            break
    await store.checkpoint()
    return pruned
