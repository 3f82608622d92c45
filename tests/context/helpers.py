"""Railway and Sentry answers in the documented shapes (railway-sentry.md), for the
aioresponses tests and the fake servers of the end-to-end test."""

from datetime import datetime, timedelta
from typing import Any

from tests.fakes import START

RAILWAY_TOKEN = "rw-token-0123456789abcdef"
SENTRY_TOKEN = "sntrys_0123456789abcdef"


def stamp(minutes_before: float, base: datetime = START) -> str:
    moment = base - timedelta(minutes=minutes_before)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def deployment(
    id: str, status: str, finished_minutes_before: float, commit: str, message: str, *,
    can_rollback: bool = True, author: str = "alice", branch: str = "main", base: datetime = START,
) -> dict[str, Any]:
    return {
        "node": {
            "id": id, "status": status, "createdAt": stamp(finished_minutes_before + 3, base),
            "statusUpdatedAt": stamp(finished_minutes_before, base), "staticUrl": "web-production-ab12.up.railway.app",
            "canRollback": can_rollback,
            "meta": {"commitHash": commit, "commitMessage": message, "commitAuthor": author, "branch": branch},
        }
    }


def deployments_answer(base: datetime = START) -> dict[str, Any]:
    """The current deploy (4m before detection), a FAILED one before it, the one before that."""
    return {"data": {"deployments": {"edges": [
        deployment("d-3", "SUCCESS", 4, "abc1234def", "fix checkout", base=base),
        deployment("d-2", "FAILED", 20, "bad0000aaa", "try new pool", author="bob", base=base),
        deployment("d-1", "SUCCESS", 120, "0ld1111bbb", "add invoices", base=base),
    ]}}}


def logs_answer(extra_secret: str = "", base: datetime = START) -> dict[str, Any]:
    rows = [
        {"timestamp": stamp(2, base), "message": "ERROR pool exhausted <!channel>", "severity": "error"},
        {"timestamp": stamp(1, base), "message": f"ERROR auth failed with token {extra_secret}\n\tat db.py:42",
         "severity": "error"},
    ]
    return {"data": {"deploymentLogs": rows}}


def sentry_issues(base: datetime = START) -> list[dict[str, Any]]:
    return [
        {"id": "1", "shortId": "WEB-1A2", "title": "OperationalError: too many connections",
         "culprit": "checkout.views.pay", "permalink": "https://acme.sentry.io/issues/1/", "level": "error",
         "status": "unresolved", "count": "150", "userCount": 12, "firstSeen": stamp(3, base),
         "lastSeen": stamp(0, base),
         "project": {"id": "42", "slug": "web"}, "metadata": {}},
        {"id": "2", "shortId": "WEB-9", "title": "KeyError: 'sku'", "culprit": "cart.add",
         "permalink": "https://acme.sentry.io/issues/2/", "level": "error", "status": "unresolved",
         "count": "7", "userCount": 2, "firstSeen": stamp(60 * 24, base), "lastSeen": stamp(1, base),
         "project": {"id": "42", "slug": "web"}, "metadata": {}},
    ]
