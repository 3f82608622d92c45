"""Railway's answers, judged without I/O: deployments, the one that finished last before
detection, the broken ones, the rollback target, error log lines and the platform status."""

from datetime import datetime, timedelta
from typing import Any

from monitor.context.model import Deployment, LogLine, RailwayContext
from monitor.context.text import clean, parse_time, relative
from monitor.context.vendor import VendorError

BROKEN_STATUSES = ("CRASHED", "FAILED")
BROKEN_WINDOW = timedelta(hours=1)
MAX_LOG_LINES = 5
_PLATFORM_TROUBLE = {"HASISSUES": "has issues", "UNDERMAINTENANCE": "under maintenance"}


def graphql_data(payload: Any) -> dict[str, Any]:
    """The `data` of a GraphQL answer; its `errors` (which arrive with HTTP 200) as a VendorError."""
    if not isinstance(payload, dict):
        raise VendorError("malformed answer (not a GraphQL response)")
    errors = payload.get("errors")
    if errors:
        first = errors[0] if isinstance(errors, list) and errors else {}
        message = str(first.get("message", "")) if isinstance(first, dict) else str(first)
        if "not authorized" in message.lower():
            raise VendorError("not authorized")
        raise VendorError(f"GraphQL error: {message or 'unspecified'}")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise VendorError("malformed answer (no data)")
    return data


def parse_deployments(data: dict[str, Any]) -> list[Deployment]:
    """The deployments of a `deployments` query, newest first; every `meta` key is optional."""
    try:
        edges = data["deployments"]["edges"]
        nodes = [edge["node"] for edge in edges]
        deployments = [_deployment(node) for node in nodes]
    except (KeyError, TypeError, ValueError):
        raise VendorError("malformed answer (deployments)") from None
    return sorted(deployments, key=lambda deployment: deployment.created_at, reverse=True)


def _deployment(node: dict[str, Any]) -> Deployment:
    created = parse_time(node.get("createdAt"))
    if created is None or not node.get("id"):
        raise ValueError("a deployment without id or createdAt")
    meta = node.get("meta") if isinstance(node.get("meta"), dict) else {}

    def text(key: str) -> str | None:
        value = meta.get(key)
        return clean(value, 120) if isinstance(value, str) and value.strip() else None

    return Deployment(
        id=str(node["id"]),
        status=str(node.get("status") or "UNKNOWN"),
        created_at=created,
        finished_at=parse_time(node.get("statusUpdatedAt")),
        commit_hash=text("commitHash"),
        commit_message=text("commitMessage"),
        author=text("commitAuthor"),
        branch=text("branch"),
        can_rollback=node.get("canRollback") is True,
    )


def finished(deployment: Deployment) -> datetime:
    return deployment.finished_at or deployment.created_at


def last_deploy(deployments: list[Deployment], detected_at: datetime) -> Deployment | None:
    """The deployment that finished (SUCCESS) last before detection."""
    done = [d for d in deployments if d.status == "SUCCESS" and finished(d) <= detected_at]
    return max(done, key=finished, default=None)


def broken(deployments: list[Deployment], detected_at: datetime) -> list[Deployment]:
    """CRASHED or FAILED deployments of the hour before detection (or since)."""
    return [d for d in deployments if d.status in BROKEN_STATUSES and finished(d) >= detected_at - BROKEN_WINDOW]


def current(deployments: list[Deployment]) -> Deployment | None:
    """The deployment the service runs: the newest SUCCESS, else the newest at all."""
    return next((d for d in deployments if d.status == "SUCCESS"), deployments[0] if deployments else None)


def rollback_target(deployments: list[Deployment]) -> Deployment | None:
    """The last SUCCESS deployment before the current one that can be rolled back to."""
    now = current(deployments)
    if now is None:
        return None
    older = [d for d in deployments if d.created_at < now.created_at and d.id != now.id]
    return next((d for d in older if d.status == "SUCCESS" and d.can_rollback), None)


def parse_logs(data: dict[str, Any]) -> list[LogLine]:
    """At most MAX_LOG_LINES lines (the API returns limit+1), each cleaned and cut."""
    rows = data.get("deploymentLogs")
    if not isinstance(rows, list):
        raise VendorError("malformed answer (deploymentLogs)")
    lines = [
        LogLine(at=parse_time(row.get("timestamp")), message=clean(row.get("message", "")))
        for row in rows
        if isinstance(row, dict) and str(row.get("message", "")).strip()
    ]
    return lines[:MAX_LOG_LINES]


def platform_trouble(payload: Any) -> str | None:
    """What Railway's status page reports when it reports trouble; None when all is well or
    when the shape is not one we know (it is documented as "may change")."""
    if not isinstance(payload, dict):
        return None
    page = payload.get("page") if isinstance(payload.get("page"), dict) else {}
    status = str(page.get("status") or payload.get("status") or "").upper()
    incidents = [
        clean(item.get("name"), 100)
        for key in ("activeIncidents", "activeMaintenances")
        for item in payload.get(key) or []
        if isinstance(item, dict) and item.get("name")
    ]
    if status not in _PLATFORM_TROUBLE and not incidents:
        return None
    said = _PLATFORM_TROUBLE.get(status, "reports incidents")
    return f"{said}: {'; '.join(incidents)}" if incidents else said


def deploy_line(deployment: Deployment, detected_at: datetime) -> str:
    """`SUCCESS 4m before detection: abc1234 "fix checkout" by alice (main)`"""
    line = f"{deployment.status} {relative(finished(deployment), detected_at)}"
    commit = deployment.short_hash or deployment.id
    line += f": {commit}"
    if deployment.commit_message:
        line += f' "{deployment.commit_message}"'
    if deployment.author:
        line += f" by {deployment.author}"
    if deployment.branch:
        line += f" ({deployment.branch})"
    return line


def railway_lines(section: RailwayContext, detected_at: datetime) -> list[str]:
    lines = []
    if section.last_deploy is not None:
        lines.append(f"Last deploy: {deploy_line(section.last_deploy, detected_at)}")
    elif section.deployments:
        lines.append("Last deploy: none finished before detection")
    lines += [f"Broken deploy: {deploy_line(d, detected_at)} [{d.id}]" for d in section.broken]
    if section.error_lines:
        lines.append(f"Error log ({len(section.error_lines)} line{'s' if len(section.error_lines) > 1 else ''}):")
        lines += [f"  {line.at:%H:%M:%S}Z {line.message}" if line.at else f"  {line.message}"
                  for line in section.error_lines]
    if section.platform_trouble:
        lines.append(f"Railway platform: {section.platform_trouble}")
    lines += [f"Railway: {problem}" for problem in section.problems]
    return lines
