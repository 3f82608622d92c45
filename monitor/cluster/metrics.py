"""The cluster's series, on the daemon's registry."""

from prometheus_client import CollectorRegistry, Counter, Gauge


class ClusterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.leader = Gauge("health_monitor_leader", "1 while this replica is the leader.", registry=registry)
        self.epoch = Gauge(
            "health_monitor_leader_epoch",
            "The lease's epoch as this replica last saw it (0: a single process, no election).",
            registry=registry,
        )
        self.changes = Counter(
            "health_monitor_leader_changes",
            "Times this replica became leader or stopped being leader.",
            registry=registry,
        )

        self.outbox_oldest_pending = Gauge(
            "health_monitor_outbox_oldest_pending_seconds",
            "Age of the oldest notification not yet delivered nor given up, as the leader last saw it (0: none).",
            registry=registry,
        )

    def role_changed(self, leading: bool, epoch: int) -> None:
        self.leader.set(1 if leading else 0)
        self.epoch.set(epoch)
        self.changes.inc()
