"""Diagnosis context: what the playbook's Phase 3 asks the on-call engineer to look up by
hand (the last deploys, the error log, Sentry's issues, the platform's status), gathered
when an incident opens and carried by its page; change events from Railway's webhooks;
and Phase 4's remediation (restart, redeploy, rollback) one command away.

One folder per provider (`railway/`, `sentry/`), each with its I/O client in `client.py`
and the pure parsing and judging in `parse.py`, after Gatus's alerting providers."""

ACTIONS = ("restart", "redeploy", "rollback")
"""The remediation actions, by Railway mutation: deploymentRestart, deploymentRedeploy, deploymentRollback."""
