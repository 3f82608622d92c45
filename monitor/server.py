"""The HTTP face of the daemon: /metrics, /healthz, /readyz and the incidents API (the status page,
/api/checks and badges are monitor/status_routes.py and monitor/history/api.py; pings monitor/ping_api.py)."""

import hmac
import json
from typing import Protocol

from aiohttp import web

from monitor.clock import Clock
from monitor.config import Config
from monitor.metrics import MonitorMetrics
from monitor.model import Incident
from monitor.status_page import LastRun
from monitor.store import StateStore

HEALTHY_HEARTBEAT_AGE_SECONDS = 10.0


class DaemonView(Protocol):
    """What the server reads from the daemon."""

    metrics: MonitorMetrics
    store: StateStore
    ready: bool
    config: Config
    clock: Clock
    last_runs: dict[str, LastRun]

    @property
    def api_token(self) -> str | None: ...

    def heartbeat_age(self) -> float: ...

    @property
    def store_problem(self) -> str | None: ...

    async def acknowledge(self, incident_id: int, by: str, note: str) -> Incident | None: ...


def build_app(daemon: DaemonView) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/metrics")
    async def metrics(request: web.Request) -> web.Response:
        # Formatting 100,000 series in one go would stall every check for a tenth of a second:
        # the rows render in pieces, with the checks running in between.
        scrape = daemon.metrics.scrape(
            request.headers.get("Accept", ""), request.headers.get("Accept-Encoding", "")
        )
        body = await scrape.render()
        response = web.Response(body=body, headers={"Content-Type": scrape.content_type})
        if scrape.gzip:
            response.headers["Content-Encoding"] = "gzip"
        return response

    @routes.get("/healthz")
    async def healthz(_: web.Request) -> web.Response:
        age = daemon.heartbeat_age()
        if age > HEALTHY_HEARTBEAT_AGE_SECONDS:
            return web.json_response({"status": "stalled", "heartbeat_age_seconds": round(age, 1)}, status=503)
        return web.json_response({"status": "ok"})

    @routes.get("/readyz")
    async def readyz(_: web.Request) -> web.Response:
        if not daemon.ready:
            return web.json_response({"status": "starting"}, status=503)
        if daemon.store_problem is not None:
            reason = f"state store cannot be written: {daemon.store_problem}"
            return web.json_response({"status": "degraded", "reason": reason}, status=503)
        return web.json_response({"status": "ready"})

    @routes.get("/api/incidents")
    async def list_incidents(request: web.Request) -> web.Response:
        include_resolved = request.query.get("all") in ("1", "true", "yes")
        incidents = await (daemon.store.recent_incidents() if include_resolved else daemon.store.open_incidents())
        return web.json_response({"incidents": [_json(incident) for incident in incidents]})

    @routes.get("/api/incidents/{id}")
    async def get_incident(request: web.Request) -> web.Response:
        incident = await _lookup(daemon.store, request.match_info["id"])
        return web.json_response(_json(incident))

    @routes.post("/api/incidents/{id}/ack")
    async def acknowledge(request: web.Request) -> web.Response:
        _authorize(request, daemon.api_token)
        body = await _json_body(request)
        existing = await _lookup(daemon.store, request.match_info["id"])
        by = str(body.get("by") or "api")[:100]
        note = str(body.get("note") or "")[:1000]
        incident = await daemon.acknowledge(existing.id, by, note)
        if incident is None:
            return web.json_response({"error": f"incident {existing.id} is already resolved"}, status=409)
        return web.json_response(_json(incident))

    app = web.Application()
    app.add_routes(routes)
    return app


def _authorize(request: web.Request, token: str | None) -> None:
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token is None or not offered or not hmac.compare_digest(offered.encode(), token.encode()):
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "a valid bearer token is required ([server] api_token_env)"}),
            content_type="application/json",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def _json_body(request: web.Request) -> dict[str, object]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "the body must be JSON"}), content_type="application/json"
        ) from None
    return body if isinstance(body, dict) else {}


async def _lookup(store: StateStore, raw_id: str) -> Incident:
    incident = await store.get_incident(int(raw_id)) if raw_id.isdigit() else None
    if incident is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"no incident {raw_id}"}), content_type="application/json"
        )
    return incident


def _json(incident: Incident) -> dict[str, object]:
    return {"key": incident.key, **incident.model_dump(mode="json")}
