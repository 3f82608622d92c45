"""Every metric the daemon exports, on a registry of its own (never the global one), and one
scrape's rendering: negotiated like prometheus_client's own handler (OpenMetrics when the
scraper asks for it, gzip when it accepts it), in pieces of a millisecond between which the
event loop runs its checks."""

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder, gzip_accepted

from monitor import __version__
from monitor.check_series import DEFAULT_DURATION_BUCKETS, CheckSeries, DurationMetric
from monitor.gzip_segments import Segment, compress, gzip_body, inflate
from monitor.model import Severity, Status
from monitor.plugin import PluginGauge

# `_created` series double the exposition and no dashboard of ours reads them.
disable_created_metrics()

_LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
_DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class MonitorMetrics:
    """The contract's `health_monitor_*` series plus prometheus_client's `process_*` and `python_*`.
    Labels are bounded: check, sink, severity, status.

    The per-check `health_monitor_check_*` series live in `checks` (see monitor/check_series.py);
    everything else in `shared`, through prometheus_client. `registry` holds both, for look-ups."""

    def __init__(
        self,
        duration_metric: DurationMetric = "histogram",
        duration_buckets: Sequence[float] = DEFAULT_DURATION_BUCKETS,
    ) -> None:
        self.checks = CheckSeries(duration_metric, duration_buckets)
        self.shared = CollectorRegistry(auto_describe=True)
        r = self.shared
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
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
        self.build_info = Gauge(
            "health_monitor_build_info", "Always 1; the version as a label.", ["version"], registry=r
        )
        self.build_info.labels(version=__version__).set(1)
        for severity in Severity:
            self.incidents_open.labels(severity=severity.value).set(0)
            self.incidents_opened.labels(severity=severity.value)
            self.response_breaches.labels(severity=severity.value)
        self.monitor_online.set(1)
        self._plugin_gauges: dict[str, tuple[PluginGauge, Gauge]] = {}
        self._plugin_series: dict[str, set[tuple[str, tuple[str, ...]]]] = {}
        """Each plugin instance's series (gauge name, label values), removed with it."""
        self.registry = CollectorRegistry()
        self.registry.register(self.shared)
        self.registry.register(self.checks)

    def record_run(self, check: str, status: Status, duration: float, finished_at: float) -> None:
        self.checks.record(check, status, duration, finished_at)

    def forget_check(self, check: str) -> None:
        """Drop a check's series after a reload removed it, so a gone check is not reported as up;
        its plugin's own series go with them."""
        self.checks.forget(check)
        for name, values in self._plugin_series.pop(check, set()):
            with contextlib.suppress(KeyError):
                self._plugin_gauges[name][1].remove(*values)

    # Per-plugin gauges (monitor.plugin.PluginMetrics)

    def declare(self, *gauges: PluginGauge) -> None:
        for gauge in gauges:
            self._declared(gauge)

    def set_gauge(self, owner: str, gauge: PluginGauge, value: float, **labels: str) -> None:
        values = (owner, *(labels[label] for label in gauge.labels))
        self._declared(gauge).labels(*values).set(value)
        self._plugin_series.setdefault(owner, set()).add((gauge.name, values))

    def remove_gauge(self, owner: str, gauge: PluginGauge, **labels: str) -> None:
        values = (owner, *(labels[label] for label in gauge.labels))
        self._plugin_series.get(owner, set()).discard((gauge.name, values))
        with contextlib.suppress(KeyError):
            self._declared(gauge).remove(*values)

    def _declared(self, gauge: PluginGauge) -> Gauge:
        """The gauge in the shared registry, created when a plugin first sets it; two plugin
        types declaring one name differently is a programming error."""
        known = self._plugin_gauges.get(gauge.name)
        if known is None:
            created = Gauge(gauge.name, gauge.documentation, ["check", *gauge.labels], registry=self.shared)
            known = self._plugin_gauges[gauge.name] = (gauge, created)
        if known[0] != gauge:
            raise ValueError(f"metric {gauge.name} declared twice, differently: {known[0]} and {gauge}")
        return known[1]

    def scrape(self, accept: str, accept_encoding: str) -> "Scrape":
        """One scrape in the negotiated format and encoding."""
        encoder, content_type = choose_encoder(accept)
        return Scrape(
            checks=self.checks,
            shared=self.shared,
            encoder=encoder,
            content_type=content_type,
            gzip=gzip_accepted(accept_encoding),
        )


@dataclass(frozen=True)
class Scrape:
    """One scrape: where its series come from, and how the scraper wants them."""

    checks: CheckSeries
    shared: CollectorRegistry
    encoder: Callable[[CollectorRegistry], bytes]
    content_type: str
    gzip: bool

    @property
    def openmetrics(self) -> bool:
        return self.content_type.startswith("application/openmetrics-text")

    async def render(self) -> bytes:
        """The response body. Never blocks the loop for more than a piece of CHUNK_ROWS rows; a
        run recorded between two pieces shows in the rows not yet formatted, as in a live registry."""
        shared = self.encoder(self.shared)
        eof = b""
        if self.openmetrics:
            shared, eof = shared.removesuffix(b"# EOF\n"), b"# EOF\n"
        segments: list[Segment] = [compress(shared)]
        for segment, formatted in self.checks.segments(self.openmetrics):
            segments.append(segment)
            if formatted:
                await asyncio.sleep(0)
        segments.append(compress(eof))
        if self.gzip:
            return gzip_body(segments)
        plain: list[bytes] = []
        for segment in segments:
            plain.append(inflate(segment))
            await asyncio.sleep(0)
        return b"".join(plain)
