"""The playbook's incident-type playbooks, named in alerts so the on-call engineer knows
the first moves without opening the document."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Runbook:
    title: str
    actions: tuple[str, ...]


PLAYBOOK_RUNBOOKS = {
    runbook.title: runbook
    for runbook in (
        Runbook(
            "Complete Outage",
            (
                "Check the hosting provider's status page",
                "Check the service status",
                "Restart the service",
                "If restart fails, redeploy",
                "If redeploy fails, roll back to the last known good deployment",
            ),
        ),
        Runbook(
            "Security Incident",
            (
                "Isolate affected systems (maintenance mode)",
                "Rotate all secrets",
                "Force logout all users",
                "Review audit logs",
                "Enable additional logging",
            ),
        ),
        Runbook(
            "Database Issues",
            (
                "Check database status",
                "Check the application's connection pool",
                "Kill long-running queries (pg_terminate_backend on the pids listed above)",
                "If corrupted, restore from backup",
                "Run maintenance",
            ),
        ),
        Runbook(
            "Performance Degradation",
            (
                "Check metrics (CPU, memory, response times)",
                "Identify bottlenecks in the logs (slow, timeout)",
                "Clear cache and restart",
                "Scale horizontally",
                "Optimize the database",
            ),
        ),
        Runbook(
            "Integration Failure",
            (
                "Check the external service's status page",
                "Verify API keys",
                "Enable fallback mode",
                "Clear the integration cache",
                "Retry failed operations",
            ),
        ),
    )
}

_DEFAULT_BY_TYPE = {"postgres": "Database Issues", "integration": "Integration Failure"}
_DEFAULT_BY_CODE = {"down": "Complete Outage", "slow": "Performance Degradation", "degraded": "Performance Degradation"}


def default_runbook(check_type: str, code: str) -> str | None:
    """The playbook section that fits a finding when the check names none."""
    return _DEFAULT_BY_TYPE.get(check_type) or (_DEFAULT_BY_CODE.get(code) if check_type == "http" else None)


def runbook_actions(name: str | None) -> tuple[str, ...]:
    """The immediate actions of a playbook section; none for a free-text runbook or URL."""
    runbook = PLAYBOOK_RUNBOOKS.get(name or "")
    return runbook.actions if runbook else ()
