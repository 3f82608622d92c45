"""App mode's messages, pure: the parent message that shows an incident's current state
(severity, status, who acknowledged, duration; green once resolved) with its buttons, and the
replies in its thread. Every text from a monitored system is escaped (alerting/slack/message.py);
only `mention`, trusted config text, is sent as written."""

from datetime import datetime
from typing import Any

from alerting.base import Deployment, Incident, Notification, NotificationKind, Severity, SlackThread, format_duration
from alerting.slack.message import MAX_SECTION_CHARS, build_payload, slack_escape, truncate

ACKNOWLEDGE = "incident.acknowledge"
SNOOZE = "incident.snooze"
ROLLBACK = "incident.rollback"
SNOOZE_SECONDS = 3600.0
BROADCAST_KINDS = frozenset({NotificationKind.ESCALATION, NotificationKind.RESOLUTION})
"""Replies also shown in the channel: the thread is where the incident lives, but these must be seen."""
MENTION_KINDS = frozenset({NotificationKind.ESCALATION, NotificationKind.SEVERITY_RAISED})
RESOLVED_COLOR = "#2eb67d"
SEVERITY_COLORS = {Severity.P1: "#e01e5a", Severity.P2: "#e8912d", Severity.P3: "#ecb22e", Severity.P4: "#9aa0a6"}
_MAX_FIELD_CHARS = 2000
_MAX_BUTTON_CHARS = 75


def status_label(incident: Incident) -> str:
    if not incident.is_open:
        return "Resolved"
    return "Acknowledged" if incident.acknowledged else "Open"


def rollback_target(incident: Incident) -> Deployment | None:
    """The deployment a rollback button offers: only when the service deployed shortly before
    the incident (issue 15's suspect deploy) and Railway can roll back to an earlier one."""
    context = incident.context
    if context is None or not context.suspect_deploy or context.railway is None:
        return None
    return context.railway.rollback_to


def parent_message(incident: Incident, *, monitor: str, now: datetime, mention: str | None = None,
                   buttons: bool = True) -> dict[str, Any]:
    """The channel message of an incident (chat.postMessage and chat.update arguments, without channel/ts)."""
    status = status_label(incident)
    headline = slack_escape(f"{incident.severity.value} {incident.check}: {status}")
    color = RESOLVED_COLOR if not incident.is_open else SEVERITY_COLORS[incident.severity]
    acknowledged = (
        slack_escape(incident.acknowledged_by or "someone") if incident.acknowledged else "nobody yet"
    )
    blocks: list[dict[str, Any]] = [
        _section(f"*{headline}*\n{slack_escape(incident.summary)}"),
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*Severity*\n{incident.severity.value}"),
                _mrkdwn(f"*Status*\n{status}"),
                _mrkdwn(f"*Acknowledged by*\n{truncate(acknowledged, _MAX_FIELD_CHARS - 20)}"),
                _mrkdwn(f"*Duration*\n{format_duration(incident.duration_seconds(now))}"),
            ],
        },
    ]
    if incident.impact:
        blocks.append(_section(f"*Impact*: {slack_escape(incident.impact)}"))
    if incident.timeline:
        latest = incident.timeline[-1]
        blocks.append(_context(f"Latest: {slack_escape(latest.text)}"))
    blocks.append(_context(slack_escape(f"{monitor} · incident #{incident.id} · {incident.key}")))
    if buttons and incident.is_open:
        blocks.append({"type": "actions", "block_id": f"incident:{incident.id}", "elements": _buttons(incident)})
    mention_prefix = f"{mention} " if mention else ""
    return {
        "text": f"{mention_prefix}{headline}",
        "attachments": [{"color": color, "blocks": blocks}],
    }


def thread_reply(notification: Notification, thread: SlackThread, mention: str | None = None) -> dict[str, Any]:
    """chat.postMessage arguments for one notification in its incident's thread."""
    payload = build_payload(notification)
    if mention and notification.kind in MENTION_KINDS:
        payload["text"] = f"{mention} {payload['text']}"
        payload["blocks"] = [_section(mention), *payload["blocks"]]
    return {
        **payload,
        "channel": thread.channel,
        "thread_ts": thread.ts,
        "reply_broadcast": notification.kind in BROADCAST_KINDS,
    }


def _buttons(incident: Incident) -> list[dict[str, Any]]:
    value = str(incident.id)
    elements: list[dict[str, Any]] = []
    if not incident.acknowledged:
        elements.append(_button("Acknowledge", ACKNOWLEDGE, value, style="primary"))
    elements.append(_button("Snooze 1 h", SNOOZE, value))
    target = rollback_target(incident)
    if target is not None:
        label = f"Roll back to {target.short_hash or target.id}"
        rollback = _button(label, ROLLBACK, f"{incident.id}:{target.id}", style="danger")
        commit = f' "{target.commit_message}"' if target.commit_message else ""
        rollback["confirm"] = {
            "title": {"type": "plain_text", "text": "Roll back?"},
            "text": _mrkdwn(slack_escape(f"Roll {incident.check} back to {target.short_hash or target.id}{commit}?")),
            "confirm": {"type": "plain_text", "text": "Roll back"},
            "deny": {"type": "plain_text", "text": "Cancel"},
            "style": "danger",
        }
        elements.append(rollback)
    return elements


def _button(label: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": truncate(label, _MAX_BUTTON_CHARS)},
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(truncate(text, MAX_SECTION_CHARS))}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(truncate(text, MAX_SECTION_CHARS))]}
