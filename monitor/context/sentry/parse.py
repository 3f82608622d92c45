"""Sentry's issue list, judged without I/O."""

from datetime import datetime
from typing import Any

from monitor.context.model import SentryContext, SentryIssue
from monitor.context.text import clean, parse_time, relative
from monitor.context.vendor import VendorError

MAX_ISSUES = 3


def parse_project_id(payload: Any) -> int:
    try:
        return int(payload["id"])
    except (KeyError, TypeError, ValueError):
        raise VendorError("malformed answer (project)") from None


def parse_issues(payload: Any) -> list[SentryIssue]:
    """At most MAX_ISSUES issues; `count` arrives as a string, `userCount` as an integer."""
    if not isinstance(payload, list):
        raise VendorError("malformed answer (issues)")
    issues = []
    for item in payload[:MAX_ISSUES]:
        if not isinstance(item, dict) or not item.get("shortId"):
            raise VendorError("malformed answer (issue)")
        issues.append(
            SentryIssue(
                short_id=clean(item["shortId"], 40),
                title=clean(item.get("title") or "untitled", 120),
                culprit=clean(item["culprit"], 120) if item.get("culprit") else None,
                count=_number(item.get("count")),
                users=_number(item.get("userCount")),
                first_seen=parse_time(item.get("firstSeen")),
                permalink=clean(item["permalink"], 300) if item.get("permalink") else None,
            )
        )
    return issues


def _number(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def mark_new_since(issues: list[SentryIssue], deployed_at: datetime) -> None:
    for issue in issues:
        issue.new_since_deploy = issue.first_seen is not None and issue.first_seen >= deployed_at


def sentry_lines(section: SentryContext, detected_at: datetime) -> list[str]:
    lines = []
    if section.issues:
        lines.append("Sentry, unresolved in the last hour:")
    elif not section.problems:
        lines.append("Sentry: no unresolved issue in the last hour")
    for issue in section.issues:
        line = f'  {issue.short_id} "{issue.title}"'
        if issue.culprit:
            line += f" in {issue.culprit}"
        line += f": {issue.count} events, {issue.users} users"
        if issue.first_seen:
            line += f", first seen {relative(issue.first_seen, detected_at)}"
        if issue.new_since_deploy:
            line += " (NEW since the last deploy)"
        lines.append(line)
        if issue.permalink:
            lines.append(f"    {issue.permalink}")
    lines += [f"Sentry: {problem}" for problem in section.problems]
    return lines
