"""Railway's GraphQL API: the queries the context needs and the three remediation mutations.
Every failure, including GraphQL `errors` in an HTTP 200, is a VendorError."""

from datetime import datetime
from typing import Any

import aiohttp

from monitor.context.config import RailwayEntry
from monitor.context.model import Deployment, LogLine
from monitor.context.railway import parse
from monitor.context.vendor import VendorError, request_json

DEPLOYMENTS = """
query Deployments($input: DeploymentListInput!, $first: Int) {
  deployments(input: $input, first: $first) {
    edges { node { id status createdAt statusUpdatedAt staticUrl canRollback meta } }
  }
}"""
DEPLOYMENT_LOGS = """
query DeploymentLogs($deploymentId: String!, $limit: Int, $filter: String, $startDate: DateTime) {
  deploymentLogs(deploymentId: $deploymentId, limit: $limit, filter: $filter, startDate: $startDate) {
    timestamp message severity
  }
}"""
RESTART = "mutation DeploymentRestart($id: String!) { deploymentRestart(id: $id) }"
ROLLBACK = "mutation DeploymentRollback($id: String!) { deploymentRollback(id: $id) }"
REDEPLOY = "mutation DeploymentRedeploy($id: String!) { deploymentRedeploy(id: $id) { id status } }"
DEPLOYMENTS_LISTED = 10


class RailwayClient:
    def __init__(self, entry: RailwayEntry, http: aiohttp.ClientSession, timeout: float) -> None:
        self.entry = entry
        self._http = http
        self._timeout = timeout

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        payload = await request_json(
            self._http, "POST", self.entry.api_url, headers=self.entry.auth_headers(), timeout=self._timeout,
            body={"query": query, "variables": variables},
        )
        return parse.graphql_data(payload)

    async def deployments(self) -> list[Deployment]:
        entry = self.entry
        scope = {"projectId": entry.project_id, "environmentId": entry.environment_id, "serviceId": entry.service_id}
        data = await self.graphql(DEPLOYMENTS, {"input": scope, "first": DEPLOYMENTS_LISTED})
        return parse.parse_deployments(data)

    async def error_logs(self, deployment_id: str, since: datetime) -> list[LogLine]:
        variables = {
            "deploymentId": deployment_id, "limit": parse.MAX_LOG_LINES, "filter": "@level:error",
            "startDate": since.isoformat().replace("+00:00", "Z"),
        }
        return parse.parse_logs(await self.graphql(DEPLOYMENT_LOGS, variables))

    async def platform_trouble(self) -> str | None:
        payload = await request_json(self._http, "GET", self.entry.status_url, headers={}, timeout=self._timeout)
        return parse.platform_trouble(payload)

    async def restart(self, deployment_id: str) -> str:
        return _accepted(await self.graphql(RESTART, {"id": deployment_id}), "deploymentRestart")

    async def rollback(self, deployment_id: str) -> str:
        return _accepted(await self.graphql(ROLLBACK, {"id": deployment_id}), "deploymentRollback")

    async def redeploy(self, deployment_id: str) -> str:
        answer = (await self.graphql(REDEPLOY, {"id": deployment_id})).get("deploymentRedeploy")
        if not isinstance(answer, dict) or not answer.get("id"):
            raise VendorError("malformed answer (deploymentRedeploy)")
        return f"new deployment {answer['id']} ({answer.get('status') or 'status unknown'})"


def _accepted(data: dict[str, Any], field: str) -> str:
    """The Boolean mutations: true is accepted, false a refusal."""
    answer = data.get(field)
    if answer is True:
        return f"accepted ({field} = true)"
    if answer is False:
        raise VendorError(f"refused ({field} = false)")
    raise VendorError(f"malformed answer ({field})")
