"""The lease's timing rules, pure. Times are seconds on the replica's monotonic clock; the
lease's expiry itself lives on the database's clock (`sql`), never on a replica's.

A renewal sets `expires_at = now() + lease` when the database runs it, which is after the
replica started the attempt; the leader trusts itself until `attempt start + lease - 1s`, so
it stops acting at least one second before any other replica can win the row."""

import random
from dataclasses import dataclass

SAFETY_MARGIN = 1.0
"""How long before the lease can expire the leader stops trusting it."""
MIN_LEASE = 2.0
MAX_POLL = 5.0
"""A standby looks for a free lease at least this often (River: 5 s), besides NOTIFY wake-ups."""
FIRST_BACKOFF = 0.1


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    lease: float

    def __post_init__(self) -> None:
        if self.lease < MIN_LEASE:
            raise ValueError(f"a leader lease must be at least {MIN_LEASE:g}s")

    @property
    def renew_every(self) -> float:
        """Three renewals per lease: two may fail before the leader steps down."""
        return self.lease / 3

    @property
    def poll_every(self) -> float:
        return min(self.lease / 3, MAX_POLL)

    @property
    def query_timeout(self) -> float:
        """A statement that takes longer is treated as a lost connection."""
        return self.lease / 3

    def trusted_until(self, attempt_started: float) -> float:
        return attempt_started + self.lease - SAFETY_MARGIN

    def next_poll(self, attempt_started: float, jitter: float | None = None) -> float:
        """Standbys spread their polls over a tenth of the interval so they do not knock together."""
        spread = random.uniform(0, 0.1) if jitter is None else jitter
        return attempt_started + self.poll_every * (1 + spread)

    def backoff(self, failures: int) -> float:
        """Delay before reconnecting after `failures` failed attempts in a row (exponential, capped,
        with jitter so replicas do not reconnect in lockstep after a server restart)."""
        ceiling = min(self.poll_every, FIRST_BACKOFF * 2 ** min(failures, 16))
        return ceiling * random.uniform(0.5, 1.0)
