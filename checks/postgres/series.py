"""The check's `health_monitor_pg_*` series on the daemon's shared metrics."""

import contextlib
from collections.abc import Mapping

from prometheus_client import Gauge

from checks.postgres.queries import TableSize
from monitor.metrics import MonitorMetrics

STATE_LABELS = {
    "active": "active",
    "idle": "idle",
    "idle in transaction": "idle_in_transaction",
    "idle in transaction (aborted)": "idle_in_transaction_aborted",
    "fastpath function call": "fastpath_function_call",
    "disabled": "disabled",
}
OTHER_STATE = "unknown"
"""Label of sessions with no state yet (still starting up) or one this list does not know."""


class PgSeries:
    """Sets one check's series, and removes those it can no longer vouch for."""

    def __init__(self, metrics: MonitorMetrics, check: str) -> None:
        self._metrics = metrics
        self._check = check
        self._tables: set[str] = set()

    def connections(self, by_state: Mapping[str | None, int], max_connections: int) -> None:
        counts = dict.fromkeys([*STATE_LABELS.values(), OTHER_STATE], 0)
        for state, sessions in by_state.items():
            counts[STATE_LABELS.get(state or "", OTHER_STATE)] += sessions
        for label, sessions in counts.items():
            self._metrics.pg_connections.labels(check=self._check, state=label).set(sessions)
        self._metrics.pg_max_connections.labels(check=self._check).set(max_connections)

    def long_queries(self, count: int) -> None:
        self._metrics.pg_long_queries.labels(check=self._check).set(count)

    def tables(self, sizes: list[TableSize]) -> None:
        """The current top tables; tables that left the top N lose their series."""
        current = {table.name for table in sizes}
        for gone in self._tables - current:
            _remove(self._metrics.pg_table_size, self._check, gone)
        for table in sizes:
            self._metrics.pg_table_size.labels(check=self._check, table=table.name).set(table.bytes)
        self._tables = current

    def forget_connections(self) -> None:
        for label in [*STATE_LABELS.values(), OTHER_STATE]:
            _remove(self._metrics.pg_connections, self._check, label)

    def forget_long_queries(self) -> None:
        _remove(self._metrics.pg_long_queries, self._check)

    def forget(self) -> None:
        """The server is out of reach: no value is better than a stale one."""
        self.forget_connections()
        self.forget_long_queries()
        _remove(self._metrics.pg_max_connections, self._check)
        self.tables([])


def _remove(gauge: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)
