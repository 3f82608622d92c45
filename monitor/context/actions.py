"""Phase 4's remediation, one command away: restart, redeploy or roll back the Railway
service of an incident. Shared by `health-monitor action` and
`POST /api/incidents/{id}/actions/{action}`; nothing here runs unless a person asks."""

from dataclasses import dataclass

import aiohttp

from monitor.context import ACTIONS
from monitor.context.config import ContextSection
from monitor.context.model import Deployment
from monitor.context.railway import parse
from monitor.context.railway.client import RailwayClient
from monitor.context.vendor import VendorError
from monitor.model import Incident

ACTION_TIMEOUT = 30.0


class ActionError(Exception):
    """The action cannot be run as asked; one line."""


@dataclass(frozen=True, slots=True)
class Plan:
    action: str
    deployment_id: str
    deployment: Deployment | None

    def describe(self) -> str:
        """`rollback to d-1 (abc1234 "fix checkout")`, `restart of d-2 (def5678)`"""
        where = "to" if self.action == "rollback" else "of"
        target = f"{self.action} {where} {self.deployment_id}"
        deployment = self.deployment
        if deployment is None:
            return target
        commit = deployment.short_hash or deployment.status
        message = f' "{deployment.commit_message}"' if deployment.commit_message else ""
        return f"{target} ({commit}{message})"


def client_for(context: ContextSection, incident: Incident, http: aiohttp.ClientSession) -> RailwayClient:
    entry = context.railway_for(incident.check)
    if entry is None:
        raise ActionError(f"no [context.railway] entry covers the check {incident.check!r} of incident {incident.id}")
    return RailwayClient(entry[1], http, ACTION_TIMEOUT)


def choose(action: str, deployments: list[Deployment], to: str | None) -> Plan:
    """Which deployment the action acts on: restart and redeploy the current one; rollback
    `to`, else the last SUCCESS before the current one that can be rolled back to."""
    if action not in ACTIONS:
        raise ActionError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    if action != "rollback":
        if to is not None:
            raise ActionError("--to is for rollback only")
        running = parse.current(deployments)
        if running is None:
            raise ActionError("the service has no deployment to act on")
        return Plan(action, running.id, running)
    if to is not None:
        return Plan(action, to, next((d for d in deployments if d.id == to), None))
    target = parse.rollback_target(deployments)
    if target is None:
        raise ActionError("no earlier SUCCESS deployment that can be rolled back to; name one with --to DEPLOYMENT")
    return Plan(action, target.id, target)


async def plan(client: RailwayClient, action: str, to: str | None) -> Plan:
    try:
        deployments = await client.deployments()
    except VendorError as exc:
        raise ActionError(f"Railway: {exc}") from None
    return choose(action, deployments, to)


async def perform(client: RailwayClient, chosen: Plan) -> str:
    """Run the mutation; Railway's answer, or VendorError."""
    mutation = {"restart": client.restart, "redeploy": client.redeploy, "rollback": client.rollback}
    return await mutation[chosen.action](chosen.deployment_id)


async def run(client: RailwayClient, chosen: Plan, by: str) -> tuple[bool, str]:
    """Perform and describe the outcome for the timeline: (succeeded, text)."""
    try:
        answer = await perform(client, chosen)
    except VendorError as exc:
        return False, f"{by} ran {chosen.describe()}: Railway: {exc}"
    return True, f"{by} ran {chosen.describe()}: Railway {answer}"
