"""Message text from the playbook's communication templates (Jinja2, shipped with the package)."""

from dataclasses import dataclass
from functools import cache

import jinja2

from alerting.base import Notification
from monitor.durations import format_duration
from monitor.incident_log import utc_stamp
from monitor.runbooks import runbook_actions


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    title: str
    text: str


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("alerting", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )


def render(notification: Notification) -> RenderedMessage:
    """The plain-text message for a notification; sinks escape it for their medium."""
    incident = notification.incident
    now = notification.created_at
    template = _environment().get_template(f"{notification.kind.value}.txt.j2")
    text = template.render(
        incident=incident,
        monitor=notification.monitor,
        previous_severity=notification.previous_severity,
        actions=runbook_actions(incident.runbook),
        next_update=format_duration(notification.next_update_seconds),
        duration=format_duration(incident.duration_seconds(now)),
        now=now,
        stamp=utc_stamp,
    )
    return RenderedMessage(title=text.splitlines()[0], text=text.rstrip() + "\n")
