"""`/ping/{check}` and `/ping/{check}/start|fail|{exit_status}`: how cron jobs and scripts tell a
heartbeat check they ran (GET or POST, as Healthchecks.io takes them).

A ping for a check that is not a heartbeat check is 404, one without the check's token (bearer
header or `token` query parameter, compared in constant time) 401: neither records anything.
The body is the run's log: its last BODY_LIMIT bytes are kept, scrubbed of secrets.
"""

import hmac
from typing import Protocol

import structlog
from aiohttp import web

from checks.heartbeat.config import HeartbeatConfig
from checks.heartbeat.pings import BODY_LIMIT, Ping, PingKind, PingLedger
from monitor.clock import Clock
from monitor.config import Config
from monitor.scrub import scrub
from monitor.store import StoreUnavailable

log = structlog.get_logger("monitor.ping_api")

BODY_READ_LIMIT = 10 * 1024 * 1024
"""A body longer than this is refused (413): a log that size is a mistake, not a run's output."""
RID_LIMIT = 128
_ACTIONS = {"start": (PingKind.START, None), "fail": (PingKind.FAIL, None)}


class PingView(Protocol):
    config: Config
    clock: Clock
    heartbeats: PingLedger


def add_ping_routes(app: web.Application, daemon: PingView) -> None:
    async def ping(request: web.Request) -> web.Response:
        name = request.match_info["check"]
        config = daemon.config.checks.get(name)
        if not isinstance(config, HeartbeatConfig):
            return _error(404, f"no heartbeat check {name!r}")
        if config.token_env is not None and not _token_matches(request, config.token_env.value()):
            return _error(401, f"check {name!r} takes pings only with its token (bearer header or ?token=)")
        kind, exit_status = _action(request.match_info.get("action"))
        if kind is None:
            return _error(404, "expected /ping/CHECK, /ping/CHECK/start, /ping/CHECK/fail or /ping/CHECK/EXIT_STATUS")
        body = await _log_tail(request)
        if body is None:
            return _error(413, f"the body exceeds {BODY_READ_LIMIT // (1024 * 1024)} MiB")
        rid = request.query.get("rid") or None
        ping = Ping(name, daemon.clock.now(), kind, exit_status, rid[:RID_LIMIT] if rid else None, scrub(body))
        try:
            await daemon.heartbeats.record(ping)
        except StoreUnavailable as exc:
            # 503: `curl --retry` and `health-monitor ping` callers try again.
            log.error("heartbeat.ping_not_recorded", check=name, error=str(exc))
            return _error(503, f"the state store cannot record the ping right now: {exc}")
        return web.Response(text="OK\n")

    for path in ("/ping/{check}", "/ping/{check}/{action}"):
        app.router.add_get(path, ping)
        app.router.add_post(path, ping)


def _action(action: str | None) -> tuple[PingKind | None, int | None]:
    if action is None:
        return PingKind.SUCCESS, None
    if action in _ACTIONS:
        return _ACTIONS[action]
    if action.isdigit() and int(action) <= 255:
        status = int(action)
        return (PingKind.SUCCESS if status == 0 else PingKind.FAIL), status
    return None, None


def _token_matches(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    offered = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else request.query.get("token", "")
    return bool(offered) and hmac.compare_digest(offered.encode(), token.encode())


async def _log_tail(request: web.Request) -> str | None:
    """The body's last BODY_LIMIT bytes as text (undecodable bytes and NUL as U+FFFD); None when
    it is longer than BODY_READ_LIMIT."""
    kept = bytearray()
    total = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > BODY_READ_LIMIT:
            return None
        kept += chunk
        if len(kept) > BODY_LIMIT:
            del kept[: len(kept) - BODY_LIMIT]
    return kept.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)
