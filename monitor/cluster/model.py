"""What the cluster code passes around: a leader's term and a picture of the cluster."""

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Role(enum.StrEnum):
    LEADER = "leader"
    STANDBY = "standby"


@dataclass(eq=False, slots=True)
class Term:
    """One election won by this replica. `epoch` is the lease row's counter, increased at every
    election; `elected_at` is on the database's clock; `trusted_until` is on this replica's
    monotonic clock: past it, the replica must not act as leader any more."""

    node: str
    epoch: int
    elected_at: datetime
    trusted_until: float
    on_stale: Callable[["Term"], None] = field(default=lambda _term: None, repr=False)

    def stale(self) -> None:
        """A write carrying this term's epoch was rejected: another replica leads now."""
        self.on_stale(self)


@dataclass(frozen=True, slots=True)
class Member:
    node: str
    role: Role
    epoch: int
    started_at: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class ClusterView:
    """`mode` is "single" (SQLite: one process, always leader, epoch 0) or "replicated"."""

    mode: str
    leader: str | None
    epoch: int
    since: datetime | None
    members: tuple[Member, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "leader": self.leader,
            "epoch": self.epoch,
            "since": _stamp(self.since),
            "replicas": [
                {
                    "node": member.node,
                    "role": member.role.value,
                    "epoch": member.epoch,
                    "started_at": _stamp(member.started_at),
                    "last_seen": _stamp(member.last_seen),
                }
                for member in self.members
            ],
        }


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
