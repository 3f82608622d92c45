"""Notifications and local webhook receivers for sink tests."""

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web

from alerting.base import Notification, NotificationKind
from monitor.model import Incident, Severity
from tests.fakes import START


def incident(severity: Severity = Severity.P1, **changes: Any) -> Incident:
    base = Incident(
        id=7,
        check="api",
        code="down",
        severity=severity,
        opened_at=START,
        summary="GET http://127.0.0.1/health failed: HTTP 503, expected 2xx",
        impact="customers cannot load the dashboard",
        runbook="Complete Outage",
        evidence=["failure: status", "body: <!channel> & <https://evil.example|click me> @here"],
        failing_runs=2,
    )
    return base.model_copy(update=changes)


def notification(kind: NotificationKind = NotificationKind.INITIAL, **changes: Any) -> Notification:
    subject = incident(**changes)
    if kind is NotificationKind.RESOLUTION:
        subject = subject.model_copy(
            update={"state": "resolved", "resolved_at": START + timedelta(minutes=7, seconds=30),
                    "resolution": "check passing again (2 consecutive good runs)"}
        )
    return Notification(
        id=f"{subject.id}:{kind.value}",
        kind=kind,
        incident=subject,
        monitor="test-monitor",
        created_at=subject.resolved_at or START,
        next_update_seconds=900,
    )


@dataclass
class Receiver:
    """A local webhook that answers with a scripted list of statuses, then 200."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    always_fail: bool = False
    hang: bool = False
    hang_first: int = 0
    """Attempts that get no answer at all before the receiver starts answering."""
    released: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.hang or self.attempts <= self.hang_first:
            await self.released.wait()
        if self.always_fail:
            return web.Response(status=500, text="error")
        if self.script:
            status, headers = self.script.pop(0)
            return web.Response(status=status, headers=headers, text="rate_limited" if status == 429 else "error")
        self.received.append(await request.json())
        return web.Response(text="ok")
