"""What the daemon takes for a passive check (heartbeat): one ping, a check's kept pings, and
`PingLedger`, the interface of the state that keeps them (`monitor.ping_ledgers` has the SQLite
and PostgreSQL implementations), so pings and their logs survive a restart:

- `watch(check, since)` remembers when a check was first watched (kept if already known): a
  check that never pinged is missed one period (or slot) after that, even across restarts;
- `record(ping)` keeps one ping (and forgets that check's pings beyond PINGS_KEPT);
- `recent(check)` the check's kept pings, oldest first, and when it was first watched.

Each raises StoreUnavailable when the store cannot answer now. Plugin-facing: checks read
these types through `checks.base`.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

PINGS_KEPT = 50
"""Pings kept per check: enough to pair starts and ends and show the last runs' logs."""
BODY_LIMIT = 100 * 1024
"""Bytes of a ping's body kept as the run's log (its end: the last lines say why it failed)."""


class PingKind(StrEnum):
    SUCCESS = "success"
    START = "start"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Ping:
    check: str
    at: datetime
    kind: PingKind
    exit_status: int | None = None
    rid: str | None = None
    body: str = ""
    """The run's log, scrubbed of secrets, at most BODY_LIMIT bytes, without NUL (PostgreSQL's
    text cannot hold it)."""

    @property
    def ends_run(self) -> bool:
        return self.kind is not PingKind.START


@dataclass(frozen=True, slots=True)
class CheckPings:
    watching_since: datetime
    pings: tuple[Ping, ...]

    @property
    def last(self) -> Ping | None:
        return self.pings[-1] if self.pings else None


class PingLedger(Protocol):
    async def watch(self, check: str, since: datetime) -> None: ...

    async def record(self, ping: Ping) -> None: ...

    async def recent(self, check: str) -> CheckPings | None:
        """None for a check never watched."""
        ...
