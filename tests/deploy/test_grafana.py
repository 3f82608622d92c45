"""deploy/grafana/health-monitor.json reads only series the daemon really exports."""

import json
import re

from prometheus_client.parser import text_string_to_metric_families

from monitor import registry
from tests.deploy.helpers import DEPLOY, DaemonProcess

DASHBOARD = DEPLOY / "grafana" / "health-monitor.json"

# PromQL words that are not metric names (functions are recognised by the "(" after them).
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", "")}


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads: quoted strings, label matchers, ranges and
    grouping clauses removed, then every identifier that is neither a keyword nor a function."""
    stripped = re.sub(r'"(?:\\.|[^"\\])*"', '""', expression)
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", stripped)
    stripped = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", stripped)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", stripped):
        followed_by_call = stripped[match.end():].lstrip().startswith("(")
        if match.group() not in _KEYWORDS and not followed_by_call:
            names.add(match.group())
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            queries.append(re.fullmatch(r"label_values\((.*),\s*\w+\)", query).group(1))  # type: ignore[union-attr]
    return queries


def exported_names(exposition: str) -> set[str]:
    """Every series name the exposition declares, with the suffixes its metric types add."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def test_the_name_extraction_sees_through_promql() -> None:
    expression = (
        'histogram_quantile(0.95, sum by (check, le) (rate(a_seconds_bucket{check=~"$check", x="by(y)"}'
        "[$__rate_interval]))) / ignoring(le) b_total or vector(0) - time()"
    )
    assert metric_names(expression) == {"a_seconds_bucket", "b_total"}


def test_every_metric_of_the_dashboard_is_exported(live_daemon: DaemonProcess) -> None:
    exported = exported_names(live_daemon.metrics()) | declared_check_gauges()
    used = set().union(*(metric_names(query) for query in dashboard_queries()))
    assert used, "the dashboard has no query"
    assert used <= exported, f"not exported by the daemon: {sorted(used - exported)}"
    for family in ("check_up", "check_duration_seconds_bucket", "incidents_open", "notifications_total",
                   "scheduler_lateness_seconds_bucket"):
        assert f"health_monitor_{family}" in used, f"the dashboard does not show health_monitor_{family}"


def declared_check_gauges() -> set[str]:
    """Gauges of check types the live daemon does not run (postgres, tls): each type declares
    them, and a daemon describes them once it runs a check of that type."""
    types = registry.available(registry.CHECK_GROUP)
    return {gauge.name for name in types for gauge in registry.load(registry.CHECK_GROUP, name).gauges}


def test_every_panel_reads_the_dashboard_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert {panel["datasource"]["uid"] for panel in panels} == {"${datasource}"}
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    assert dashboard["uid"] == "health-monitor"
