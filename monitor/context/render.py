"""The context as text: the lines under the "Diagnosis" heading of the initial alert and the
first status update (`alerting.messages.notification_lines` picks which), the post-mortem
draft and the status page, and the one timeline entry."""

from monitor.context.model import IncidentContext
from monitor.context.railway.parse import finished, railway_lines
from monitor.context.sentry.parse import sentry_lines
from monitor.context.text import relative
from monitor.model import Incident, Severity

_SUGGESTING = (Severity.P1, Severity.P2)


def incident_lines(incident: Incident) -> list[str]:
    context = incident.context
    if context is None:
        return []
    lines = []
    if context.railway is not None:
        lines += railway_lines(context.railway, context.detected_at)
    if context.sentry is not None:
        lines += sentry_lines(context.sentry, context.detected_at)
    suggestion = rollback_suggestion(incident, context)
    return [*lines, suggestion] if suggestion else lines


def rollback_suggestion(incident: Incident, context: IncidentContext) -> str | None:
    """For a P1/P2 right after a deploy: the exact command that rolls it back."""
    railway = context.railway
    if not context.suspect_deploy or incident.severity not in _SUGGESTING or railway is None:
        return None
    if railway.last_deploy is None:
        return None
    when = relative(finished(railway.last_deploy), context.detected_at)
    if railway.rollback_to is None:
        return f"Suspect deploy ({when}): no earlier deployment to roll back to"
    target = railway.rollback_to
    return (
        f"Suspect deploy ({when}). Roll back to {target.short_hash or target.id}: "
        f"health-monitor action {incident.id} rollback --to {target.id}"
    )


def timeline_text(context: IncidentContext) -> str:
    """One line for the timeline: what was found, in short."""
    parts = []
    railway = context.railway
    if railway is not None:
        if railway.last_deploy is not None:
            deploy = railway.last_deploy
            when = relative(finished(deploy), context.detected_at)
            parts.append(f"last deploy {deploy.short_hash or deploy.id} {when}")
        if railway.broken:
            parts.append(f"{len(railway.broken)} broken deploy(s)")
        if railway.error_lines:
            parts.append(f"{len(railway.error_lines)} error log line(s)")
        parts += [f"Railway: {problem}" for problem in railway.problems]
    sentry = context.sentry
    if sentry is not None:
        new = sum(issue.new_since_deploy for issue in sentry.issues)
        if sentry.issues:
            parts.append(f"{len(sentry.issues)} Sentry issue(s)" + (f", {new} new since the deploy" if new else ""))
        parts += [f"Sentry: {problem}" for problem in sentry.problems]
    return "diagnosis context gathered: " + ("; ".join(parts) or "nothing to report")
