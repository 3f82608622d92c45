"""Every metric the daemon exports, on a registry of its own (never the global one)."""

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

from monitor import __version__
from monitor.model import Severity, Status

# `_created` series double the exposition and no dashboard of ours reads them.
disable_created_metrics()

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
_DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class MonitorMetrics:
    """The contract's `health_monitor_*` series. Labels are bounded: check, sink, severity, status."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.check_up = Gauge("health_monitor_check_up", "1 when the check's last run was OK.", ["check"], registry=r)
        self.check_status = Gauge(
            "health_monitor_check_status",
            "Worst status of the last run: 0 ok, 1 warning, 2 critical, 3 unknown.",
            ["check"],
            registry=r,
        )
        self.check_duration = Histogram(
            "health_monitor_check_duration_seconds",
            "Wall time of one check run.",
            ["check"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.check_runs = Counter(
            "health_monitor_check_runs", "Check runs by resulting status.", ["check", "status"], registry=r
        )
        self.check_last_run = Gauge(
            "health_monitor_check_last_run_timestamp_seconds",
            "Unix time at which the check last finished.",
            ["check"],
            registry=r,
        )
        self.incidents_open = Gauge(
            "health_monitor_incidents_open", "Incidents open now, by severity.", ["severity"], registry=r
        )
        self.incidents_opened = Counter(
            "health_monitor_incidents", "Incidents opened since start, by severity.", ["severity"], registry=r
        )
        self.response_breaches = Counter(
            "health_monitor_incident_response_breaches",
            "Incidents not acknowledged within their severity's response time.",
            ["severity"],
            registry=r,
        )
        self.check_flapping = Gauge(
            "health_monitor_check_flapping", "1 while the check is flapping.", ["check"], registry=r
        )
        self.monitor_online = Gauge(
            "health_monitor_network_reachable",
            "0 while the connectivity check fails and findings are recorded as unknown.",
            registry=r,
        )
        self.notifications = Counter(
            "health_monitor_notifications",
            "Notification deliveries by sink and result (sent, failed, dead, shed).",
            ["sink", "result"],
            registry=r,
        )
        self.state_store_errors = Counter(
            "health_monitor_state_store_errors",
            "State store calls that failed (a full disk, an I/O error), by operation.",
            ["operation"],
            registry=r,
        )
        self.notifications_pending = Gauge(
            "health_monitor_notifications_pending", "Notifications waiting to be delivered.", registry=r
        )
        self.notification_delivery = Histogram(
            "health_monitor_notification_delivery_seconds",
            "Time from a notification's creation to its delivery.",
            ["sink"],
            buckets=_DELIVERY_BUCKETS,
            registry=r,
        )
        self.scheduler_lateness = Histogram(
            "health_monitor_scheduler_lateness_seconds",
            "How late a check run started against its schedule.",
            buckets=_LATENESS_BUCKETS,
            registry=r,
        )
        self.pg_connections = Gauge(
            "health_monitor_pg_connections", "Client backends by state.", ["check", "state"], registry=r
        )
        self.pg_max_connections = Gauge(
            "health_monitor_pg_max_connections", "The server's max_connections.", ["check"], registry=r
        )
        self.pg_long_queries = Gauge(
            "health_monitor_pg_long_queries", "Active queries running longer than long_query.", ["check"], registry=r
        )
        self.pg_table_size = Gauge(
            "health_monitor_pg_table_size_bytes",
            "Total size of the largest tables (bounded to top_tables).",
            ["check", "table"],
            registry=r,
        )
        self.tls_cert_expiry = Gauge(
            "health_monitor_tls_cert_expiry_seconds",
            "Seconds until the certificate expires (negative once expired).",
            ["check"],
            registry=r,
        )
        self.build_info = Gauge(
            "health_monitor_build_info", "Always 1; the version as a label.", ["version"], registry=r
        )
        self.build_info.labels(version=__version__).set(1)
        for severity in Severity:
            self.incidents_open.labels(severity=severity.value).set(0)
            self.incidents_opened.labels(severity=severity.value)
            self.response_breaches.labels(severity=severity.value)
        self.monitor_online.set(1)

    def record_run(self, check: str, status: Status, duration: float, finished_at: float) -> None:
        self.check_up.labels(check=check).set(1 if status is Status.OK else 0)
        self.check_status.labels(check=check).set(int(status))
        self.check_duration.labels(check=check).observe(duration)
        self.check_runs.labels(check=check, status=status.label).inc()
        self.check_last_run.labels(check=check).set(finished_at)

    def forget_check(self, check: str) -> None:
        """Drop a check's series after a reload removed it, so a gone check is not reported as up."""
        for metric in (self.check_up, self.check_status, self.check_duration, self.check_last_run, self.check_flapping):
            with contextlib.suppress(KeyError):
                metric.remove(check)
        for status in Status:
            with contextlib.suppress(KeyError):
                self.check_runs.remove(check, status.label)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
