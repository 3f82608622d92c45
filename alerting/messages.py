"""Message text from the playbook's communication templates (Jinja2, shipped with the package)."""

from dataclasses import dataclass
from datetime import timedelta
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
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
    )


def render_template(name: str, **context: object) -> str:
    """Any template under alerting/templates; `*.html.j2` templates autoescape what they insert."""
    return _environment().get_template(name).render(**context)


def render(notification: Notification) -> RenderedMessage:
    """The plain-text message for a notification; sinks escape it for their medium."""
    incident = notification.incident
    now = notification.created_at
    template = _environment().get_template(f"{notification.kind.value}.txt.j2")
    paged_at = incident.paged_at or incident.opened_at
    text = template.render(
        notification=notification,
        incident=incident,
        monitor=notification.monitor,
        previous_severity=notification.previous_severity,
        actions=runbook_actions(incident.runbook),
        next_update=format_duration(notification.next_update_seconds),
        next_update_at=now + timedelta(seconds=notification.next_update_seconds),
        since_page=format_duration((now - paged_at).total_seconds()),
        duration=format_duration(incident.duration_seconds(now)),
        now=now,
        stamp=utc_stamp,
    )
    return RenderedMessage(title=text.splitlines()[0], text=text.rstrip() + "\n")
