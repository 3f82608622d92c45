"""What a Slack button or `/incident` command does to an incident, shared by both endpoints
(monitor/slack_endpoints.py): acknowledge, snooze for an hour (a silence of the check), roll
back (issue 15's remediation), list and show. Each returns the one line the clicking user is
told; every change is on the incident's timeline with the Slack user as `by`."""

import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from alerting.slack.cockpit import SNOOZE_SECONDS, status_label
from monitor.clock import Clock
from monitor.context.actions import ActionError
from monitor.context.service import ContextService
from monitor.durations import format_duration
from monitor.incident_log import utc_stamp
from monitor.model import Incident
from monitor.store import StateStore, StoreError, StoreUnavailable

_MAX_BY_CHARS = 100
LISTED = 20


class SlackActionsView(Protocol):
    """What the Slack endpoints need of the daemon."""

    store: StateStore
    clock: Clock
    context: ContextService

    async def acknowledge(self, incident_id: int, by: str, note: str) -> Incident | None: ...

    async def annotate(self, incident_id: int, kind: str, text: str) -> Incident | None: ...


@dataclass(frozen=True, slots=True)
class SlackUser:
    id: str
    name: str

    @property
    def by(self) -> str:
        """How the timeline names them: `alice (U0123ABC)`."""
        return f"{self.name} ({self.id})"[:_MAX_BY_CHARS]


class UnknownIncident(Exception):
    pass


async def find(daemon: SlackActionsView, raw_id: str) -> Incident:
    wanted = raw_id.strip().removeprefix("#")
    incident = await daemon.store.get_incident(int(wanted)) if wanted.isdigit() else None
    if incident is None:
        raise UnknownIncident(f"There is no incident {wanted}.")
    return incident


async def acknowledge(daemon: SlackActionsView, incident: Incident, user: SlackUser) -> str:
    if not incident.is_open:
        return f"Incident #{incident.id} is already resolved: nothing to acknowledge."
    if incident.acknowledged:
        return f"Incident #{incident.id} was already acknowledged by {incident.acknowledged_by}."
    if await daemon.acknowledge(incident.id, user.by, "") is None:
        return f"Incident #{incident.id} is already resolved: nothing to acknowledge."
    return f"{user.by} acknowledged incident #{incident.id} ({incident.key}): escalation stopped."


async def snooze(daemon: SlackActionsView, incident: Incident, user: SlackUser) -> str:
    if not incident.is_open:
        return f"Incident #{incident.id} is already resolved: nothing to snooze."
    now = daemon.clock.now()
    until = now + timedelta(seconds=SNOOZE_SECONDS)
    try:
        await daemon.store.add_silence(incident.check, now, until, f"snoozed from Slack by {user.by}")
    except (sqlite3.Error, StoreError, StoreUnavailable) as exc:
        return f"The snooze could not be recorded: {exc}"
    text = f"{user.by} snoozed {incident.check} for {format_duration(SNOOZE_SECONDS)} (until {utc_stamp(until)})"
    await daemon.annotate(incident.id, "silenced", text)
    return f"{text}: incident #{incident.id} pages nobody until then."


async def roll_back(daemon: SlackActionsView, incident: Incident, deployment_id: str, user: SlackUser) -> str:
    if not incident.is_open:
        return f"Incident #{incident.id} is already resolved: no rollback was run."
    try:
        _, text = await daemon.context.run_action(incident, "rollback", deployment_id or None, user.by)
    except ActionError as exc:
        return f"No rollback was run: {exc}"
    return text


def describe(incident: Incident, clock: Clock) -> str:
    """One incident for `/incident status ID`."""
    now = clock.now()
    lines = [
        f"#{incident.id} {incident.severity.value} {incident.key}: {status_label(incident)}"
        f" for {format_duration(incident.duration_seconds(now))}",
        incident.summary,
    ]
    if incident.acknowledged:
        lines.append(f"Acknowledged by {incident.acknowledged_by}")
    if incident.timeline:
        lines.append(f"Latest: {incident.timeline[-1].text}")
    return "\n".join(lines)


async def listing(daemon: SlackActionsView) -> str:
    """The open incidents, most severe first, for `/incident list`."""
    incidents = sorted(await daemon.store.open_incidents(), key=lambda i: (i.severity.rank, i.opened_at))
    if not incidents:
        return "No open incidents."
    now = daemon.clock.now()
    lines = [
        f"#{i.id} {i.severity.value} {i.key}: {status_label(i)} for {format_duration(i.duration_seconds(now))}"
        f" — {i.summary}"
        for i in incidents[:LISTED]
    ]
    if len(incidents) > LISTED:
        lines.append(f"… and {len(incidents) - LISTED} more")
    return "\n".join(lines)
