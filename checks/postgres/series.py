"""The check's `health_monitor_pg_*` series on the daemon's shared metrics."""

from collections.abc import Mapping

from checks.base import PluginGauge, PluginMetrics
from checks.postgres.queries import TableSize

CONNECTIONS = PluginGauge("health_monitor_pg_connections", "Client backends by state.", ("state",))
MAX_CONNECTIONS = PluginGauge("health_monitor_pg_max_connections", "The server's max_connections.")
LONG_QUERIES = PluginGauge("health_monitor_pg_long_queries", "Active queries running longer than long_query.")
TABLE_SIZE = PluginGauge(
    "health_monitor_pg_table_size_bytes", "Total size of the largest tables (bounded to top_tables).", ("table",)
)
GAUGES = (CONNECTIONS, MAX_CONNECTIONS, LONG_QUERIES, TABLE_SIZE)

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

    def __init__(self, metrics: PluginMetrics, check: str) -> None:
        self._metrics = metrics
        self._check = check
        self._tables: set[str] = set()

    def connections(self, by_state: Mapping[str | None, int], max_connections: int) -> None:
        counts = dict.fromkeys([*STATE_LABELS.values(), OTHER_STATE], 0)
        for state, sessions in by_state.items():
            counts[STATE_LABELS.get(state or "", OTHER_STATE)] += sessions
        for label, sessions in counts.items():
            self._metrics.set_gauge(self._check, CONNECTIONS, sessions, state=label)
        self._metrics.set_gauge(self._check, MAX_CONNECTIONS, max_connections)

    def long_queries(self, count: int) -> None:
        self._metrics.set_gauge(self._check, LONG_QUERIES, count)

    def tables(self, sizes: list[TableSize]) -> None:
        """The current top tables; tables that left the top N lose their series."""
        current = {table.name for table in sizes}
        for gone in self._tables - current:
            self._metrics.remove_gauge(self._check, TABLE_SIZE, table=gone)
        for table in sizes:
            self._metrics.set_gauge(self._check, TABLE_SIZE, table.bytes, table=table.name)
        self._tables = current

    def forget_connections(self) -> None:
        for label in [*STATE_LABELS.values(), OTHER_STATE]:
            self._metrics.remove_gauge(self._check, CONNECTIONS, state=label)

    def forget_long_queries(self) -> None:
        self._metrics.remove_gauge(self._check, LONG_QUERIES)

    def forget(self) -> None:
        """The server is out of reach: no value is better than a stale one."""
        self.forget_connections()
        self.forget_long_queries()
        self._metrics.remove_gauge(self._check, MAX_CONNECTIONS)
        self.tables([])

