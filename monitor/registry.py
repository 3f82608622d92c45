"""Where check and sink types come from: the built-ins, plus any installed plugin that
registers under the entry-point groups `health_monitor.checks` / `health_monitor.sinks`.
Classes are imported only for the types a config uses, so asyncpg is never imported
by a config without a postgres check."""

import functools
import importlib
from importlib.metadata import entry_points
from typing import Any

from aiohttp import web

from alerting.base import IncidentDesk, Sink, SinkConfig, SinkContext
from checks.base import Check, CheckConfig, CheckContext

CHECK_GROUP = "health_monitor.checks"
SINK_GROUP = "health_monitor.sinks"
SINK_ROUTES_GROUP = "health_monitor.sink_routes"
"""Route hooks of sink types that answer requests themselves (Slack's buttons): each is
`add_routes(app: aiohttp.web.Application, desk: IncidentDesk) -> None`, registered at start
whatever the config (a reload may add the sink; a route answers 404 while none is configured)."""

BUILTIN_CHECKS = {
    "http": "checks.http:HttpCheck",
    "postgres": "checks.postgres:PostgresCheck",
    "integration": "checks.integration:IntegrationCheck",
    "tls": "checks.tls:TlsCheck",
    "tcp": "checks.tcp:TcpCheck",
    "heartbeat": "checks.heartbeat:HeartbeatCheck",
}
BUILTIN_SINKS = {
    "console": "alerting.console:ConsoleSink",
    "file": "alerting.logfile:LogFileSink",
    "slack": "alerting.slack:SlackSink",
    "email": "alerting.email:EmailSink",
    "webhook": "alerting.webhook:WebhookSink",
    "alertmanager": "alerting.alertmanager:AlertmanagerSink",
    "pagerduty": "alerting.pagerduty:PagerDutySink",
}
BUILTIN_SINK_ROUTES = {
    "slack": "alerting.slack.endpoints:add_routes",
}
_BUILTINS = {CHECK_GROUP: BUILTIN_CHECKS, SINK_GROUP: BUILTIN_SINKS, SINK_ROUTES_GROUP: BUILTIN_SINK_ROUTES}


class UnknownTypeError(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown type {name!r} (known: {', '.join(sorted(known))})")


def _import(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@functools.cache
def available(group: str) -> dict[str, str]:
    """Type name to import target for every type in `group`; built-ins win over plugins.
    Read once per process: scanning the installed distributions costs milliseconds, and a
    config of 10,000 checks asks 10,000 times. (A plugin installed later needs a restart.)"""
    targets = {ep.name: ep.value for ep in entry_points(group=group)}
    targets.update(_BUILTINS[group])
    return targets


def load(group: str, name: str) -> Any:
    targets = available(group)
    if name not in targets:
        raise UnknownTypeError(name, list(targets))
    return _import(targets[name])


def create_check(name: str, config: CheckConfig, context: CheckContext) -> Check:
    check: Check = load(CHECK_GROUP, config.type)(name, config, context)
    context.metrics.declare(*check.gauges)
    return check


def create_sink(name: str, config: SinkConfig, context: SinkContext) -> Sink:
    sink: Sink = load(SINK_GROUP, config.type)(name, config, context)
    return sink


def add_sink_routes(app: web.Application, desk: IncidentDesk) -> None:
    """Every sink type's own endpoints (SINK_ROUTES_GROUP), on the daemon's server."""
    for target in available(SINK_ROUTES_GROUP).values():
        _import(target)(app, desk)
