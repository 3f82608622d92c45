"""Who is in the cluster: read from the lease and membership rows, rendered for a person."""

from datetime import datetime
from typing import Protocol

import asyncpg

from monitor.cluster import sql
from monitor.cluster.model import ClusterView, Member, Role
from monitor.pg_calls import pooled

SEEN_WITHIN = 60.0
"""`GET /api/cluster` and `health-monitor cluster` list the replicas seen in the last minute."""


class ClusterMembers(Protocol):
    """Who is in the cluster, read from the state store: `monitor.cluster.single.SqliteMembership`
    (one process on SQLite) or `PostgresMembership` (replicas on PostgreSQL)."""

    async def view(self, now: datetime, seen_within: float = SEEN_WITHIN) -> ClusterView:
        """The members seen within `seen_within` seconds of `now` (PostgreSQL: of its own clock)."""
        ...


class PostgresMembership:
    """The rows the replicas' electors write (monitor.cluster.elector), read from any replica."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def view(self, now: datetime, seen_within: float = SEEN_WITHIN) -> ClusterView:
        async with pooled(self._pool) as connection:
            return await read_view(connection, seen_within)


async def read_view(connection: asyncpg.Connection, seen_within: float = SEEN_WITHIN) -> ClusterView:
    """The replicated cluster as PostgreSQL has it (any connection will do). An expired lease
    leads no one: its last holder is not shown as leader."""
    lease = await connection.fetchrow(sql.LEASE_STATE, sql.LEASE_NAME)
    rows = await connection.fetch(sql.RECENT_MEMBERS, seen_within)
    members = tuple(
        Member(row["node"], Role(row["role"]), row["epoch"], row["started_at"], row["last_seen"]) for row in rows
    )
    held = lease is not None and lease["held"] and lease["leader"] is not None
    return ClusterView(
        mode="replicated",
        leader=lease["leader"] if held else None,
        epoch=lease["epoch"] if lease is not None else 0,
        since=lease["elected_at"] if held else None,
        members=members,
    )


def render_text(view: ClusterView, now: datetime) -> str:
    if view.leader is None:
        head = "no replica leads now"
    elif view.mode == "single":
        head = f"{view.leader} leads (single process on SQLite: always the leader)"
    else:
        head = f"{view.leader} leads since {_clock(view.since)} (epoch {view.epoch})"
    lines = [head, f"replicas seen in the last minute: {len(view.members)}"]
    for member in view.members:
        ago = max(0, round((now - member.last_seen).total_seconds()))
        lines.append(
            f"  {member.node:<32} {member.role.value:<8} epoch {member.epoch:<6} "
            f"started {_clock(member.started_at)}  last seen {ago}s ago"
        )
    return "\n".join(lines)


def _clock(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")
