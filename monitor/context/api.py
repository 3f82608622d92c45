"""The context feature's HTTP endpoints, added to the daemon's server:
`POST /api/hooks/railway` (Railway's deployment webhooks, a shared secret in `?secret=` or
the `X-Webhook-Secret` header), `GET /api/changes`, and
`POST /api/incidents/{id}/actions/{action}` (bearer token, like the ack endpoint)."""

import hmac
import json
from datetime import timedelta
from typing import Protocol

from aiohttp import web

from monitor.clock import Clock
from monitor.context import ACTIONS
from monitor.context.actions import ActionError
from monitor.context.changes import parse_railway_webhook
from monitor.context.service import ContextService
from monitor.durations import parse_duration
from monitor.server import _authorize, _json_body, _lookup
from monitor.store import StateStore, StoreUnavailable

WEBHOOK_SECRET_HEADER = "X-Webhook-Secret"
DEFAULT_CHANGES_SINCE = "24h"


class ContextDaemonView(Protocol):
    store: StateStore
    clock: Clock
    context: ContextService

    @property
    def api_token(self) -> str | None: ...


def add_context_routes(app: web.Application, daemon: ContextDaemonView) -> None:
    routes = web.RouteTableDef()

    @routes.post("/api/hooks/railway")
    async def railway_hook(request: web.Request) -> web.Response:
        _check_webhook_secret(request, daemon.context)
        try:
            change = parse_railway_webhook(await request.json(), daemon.clock.now())
        except ValueError as exc:
            return _error(400, f"not a Railway deployment webhook: {exc}")
        try:
            noted = await daemon.context.record_change(change)
        except StoreUnavailable as exc:
            return _error(503, f"the change could not be recorded: {exc}")
        return web.json_response({"recorded": change.as_json(), "noted_on_incidents": noted})

    @routes.get("/api/changes")
    async def list_changes(request: web.Request) -> web.Response:
        try:
            since = parse_duration(request.query.get("since", DEFAULT_CHANGES_SINCE))
        except ValueError as exc:
            return _error(400, f"since: {exc}")
        try:
            changes = await daemon.context.journal.changes(
                daemon.clock.now() - timedelta(seconds=since), service_id=request.query.get("service")
            )
        except StoreUnavailable as exc:
            return _error(503, f"the changes could not be read: {exc}")
        return web.json_response({"changes": [change.as_json() for change in changes]})

    @routes.post("/api/incidents/{id}/actions/{action}")
    async def run_action(request: web.Request) -> web.Response:
        _authorize(request, daemon.api_token)
        action = request.match_info["action"]
        if action not in ACTIONS:
            return _error(404, f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
        incident = await _lookup(daemon.store, request.match_info["id"])
        body = await _json_body(request)
        to = str(body["to"])[:100] if body.get("to") else None
        by = str(body.get("by") or "api")[:100]
        try:
            succeeded, text = await daemon.context.run_action(incident, action, to, by)
        except ActionError as exc:
            return _error(409, str(exc))
        except StoreUnavailable as exc:
            return _error(503, f"the action ran but could not be recorded on the incident: {exc}")
        return web.json_response({"ok": succeeded, "result": text}, status=200 if succeeded else 502)

    app.add_routes(routes)


def _check_webhook_secret(request: web.Request, context: ContextService) -> None:
    configured = context.section.webhook_secret_env
    if configured is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": "change events are off: set [context] webhook_secret_env"}),
            content_type="application/json",
        )
    offered = request.query.get("secret") or request.headers.get(WEBHOOK_SECRET_HEADER) or ""
    if not offered or not hmac.compare_digest(offered.encode(), configured.value().encode()):
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": f"a valid shared secret is required (?secret= or {WEBHOOK_SECRET_HEADER})"}),
            content_type="application/json",
        )


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
