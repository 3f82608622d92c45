"""Message text from the playbook's communication templates (Jinja2, shipped with the package)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import jinja2

from alerting.base import (
    Incident,
    Notification,
    NotificationKind,
    Severity,
    format_duration,
    incident_lines,
    runbook_actions,
    utc_stamp,
)


def notification_lines(notification: Notification) -> list[str]:
    """The diagnosis context of an initial alert or of the first status update; nothing for other messages."""
    incident = notification.incident
    if notification.kind is NotificationKind.STATUS_UPDATE:
        updates = sum(1 for event in incident.timeline if event.kind == "status_update")
        return incident_lines(incident) if updates <= 1 else []
    return incident_lines(incident) if notification.kind is NotificationKind.INITIAL else []

@dataclass(frozen=True, slots=True)
class RenderedMessage:
    title: str
    text: str


_user_templates_dir: str | None = None


def use_templates_dir(directory: str | None) -> None:
    """Let templates in `directory` (`[alerting] templates_dir`) override the shipped ones."""
    global _user_templates_dir
    _user_templates_dir = directory
    _environment.cache_clear()


@cache
def _environment() -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("alerting", "templates")]
    if _user_templates_dir is not None:
        loaders.insert(0, jinja2.FileSystemLoader(_user_templates_dir))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
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
    template = _environment().get_template(template_name(notification))
    paged_at = incident.paged_at or incident.opened_at
    text = template.render(
        notification=notification,
        incident=incident,
        monitor=notification.monitor,
        previous_severity=notification.previous_severity,
        actions=runbook_actions(incident.runbook),
        diagnosis=notification_lines(notification),
        next_update=format_duration(notification.next_update_seconds),
        next_update_at=now + timedelta(seconds=notification.next_update_seconds),
        since_page=format_duration((now - paged_at).total_seconds()),
        duration=format_duration(incident.duration_seconds(now)),
        now=now,
        stamp=utc_stamp,
    )
    return RenderedMessage(title=text.splitlines()[0], text=text.rstrip() + "\n")


def template_name(notification: Notification) -> str:
    """A grouped resolution or status update has its own template; a GROUPED message is grouped initial alerts."""
    grouped = notification.group and notification.kind is not NotificationKind.GROUPED
    return f"{'grouped_' if grouped else ''}{notification.kind.value}.txt.j2"


def template_problems(directory: str) -> list[str]:
    """Every template in `directory` must parse, and each message template must render a
    sample incident of its kind; one line per problem."""
    root = Path(directory)
    if not root.is_dir():
        return [f"alerting.templates_dir: {directory} is not a directory"]
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(directory), undefined=jinja2.StrictUndefined)
    problems = []
    for path in sorted(root.rglob("*.j2")):
        name = path.relative_to(root).as_posix()
        try:
            environment.parse(path.read_text(encoding="utf-8"), name=name)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"alerting.templates_dir: {name} line {exc.lineno}: {exc.message}")
    if problems:
        return problems
    previous = _user_templates_dir
    use_templates_dir(directory)
    try:
        for kind in NotificationKind:
            if (root / f"{kind.value}.txt.j2").exists():
                try:
                    render(_sample(kind))
                except jinja2.TemplateError as exc:
                    problems.append(f"alerting.templates_dir: {kind.value}.txt.j2: {exc}")
    finally:
        use_templates_dir(previous)
    return problems


def _sample(kind: NotificationKind) -> Notification:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    incident = Incident(
        id=1, check="api", code="down", severity=Severity.P1, opened_at=moment, paged_at=moment,
        resolved_at=moment, summary="sample", impact="sample", runbook="Complete Outage", resolution="sample",
        acknowledged_by="sample", escalation_level=1,
    )
    return Notification(
        id="sample", kind=kind, incident=incident, monitor="sample", created_at=moment,
        previous_severity=Severity.P3, next_update_seconds=900, escalation_level=1, escalation_role="sample",
        status="Investigating", progress=("sample",),
    )
