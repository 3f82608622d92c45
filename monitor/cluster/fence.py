"""Leader-only writes carry the leader's epoch: a write from a stale epoch changes nothing and
makes the replica step down at once (a paused leader that wakes up after another replica was
elected cannot undo or repeat the new leader's work).

    await fenced_execute(connection, term,
        "UPDATE incidents SET state = $2 WHERE id = $1 AND {fence}", incident_id, "escalated")
"""

from typing import Any, Protocol

from monitor.cluster.model import Term
from monitor.cluster.sql import FENCE, LEASE_NAME
from monitor.store import StaleEpoch


class Executor(Protocol):
    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str: ...

    async def fetchval(self, query: str, *args: Any, column: int = 0, timeout: float | None = None) -> Any: ...


def fence_condition(first_parameter: int) -> str:
    """The SQL condition, reading the node and epoch from `$first_parameter` and the next one."""
    return FENCE.format(name=LEASE_NAME, node=first_parameter, epoch=first_parameter + 1)


async def fenced_execute(connection: Executor, term: Term, statement: str, *args: Any) -> str:
    """Run `statement` (which says where `{fence}` goes) as `term`'s leader; returns the status
    ("UPDATE 1"). Raises StaleEpoch (the state store's own), and tells the term, when the lease is not this term's."""
    fence = fence_condition(len(args) + 1)
    status = await connection.execute(statement.format(fence=fence), *args, term.node, term.epoch)
    if _affected(status) == 0 and not await connection.fetchval(f"SELECT {fence_condition(1)}", term.node, term.epoch):
        term.stale()
        raise StaleEpoch(f"epoch {term.epoch} of {term.node} is no longer the leader's")
    return status


def _affected(status: str) -> int:
    """Rows a command changed, from its status tag ("INSERT 0 1", "UPDATE 3", "DELETE 0")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0
