"""`GET /api/checks`, `GET /api/checks/{name}/history?range=24h|7d|30d|90d` and, with
`[server] badges = true`, `GET /badge/{check}.svg` (Shields-style: status, or uptime with
`?window=24h|7d|30d|90d`)."""

from aiohttp import web

from monitor.history.aggregate import RANGES, WINDOWS, Bucket, moment
from monitor.history.badge import status_badge, uptime_badge
from monitor.overview import OverviewSource, overview, uptime_json
from monitor.status_page import CheckRow, status_label, utc


def add_history_routes(app: web.Application, daemon: OverviewSource) -> None:
    async def list_checks(_: web.Request) -> web.Response:
        return web.json_response({"checks": [_check_json(row) for row in await overview(daemon)]})

    async def check_history(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in daemon.config.checks:
            return web.json_response({"error": f"no check {name!r}"}, status=404)
        range_name = request.query.get("range", "24h")
        if range_name not in RANGES:
            return web.json_response({"error": f"range must be one of {', '.join(RANGES)}"}, status=400)
        buckets = await daemon.history.check_history(name, range_name)
        resolution, _ = RANGES[range_name]
        return web.json_response({
            "check": name,
            "range": range_name,
            "resolution": resolution.name,
            "uptime": uptime_json(daemon.history.uptimes.get(name, {})),
            "buckets": [_bucket_json(start, bucket) for start, bucket in buckets],
        })

    async def badge(request: web.Request) -> web.Response:
        name = request.match_info["check"]
        if not daemon.config.server.badges or name not in daemon.config.checks:
            return web.Response(status=404, text="no such badge\n")
        window = request.query.get("window")
        if window is None:
            row = next(row for row in await overview(daemon) if row.name == name)
            svg = status_badge(name, status_label(row.status))
        elif window in {w.name for w in WINDOWS}:
            svg = uptime_badge(f"uptime {window}", daemon.history.uptimes.get(name, {}).get(window))
        else:
            return web.Response(status=400, text=f"window must be one of {', '.join(w.name for w in WINDOWS)}\n")
        return web.Response(text=svg, content_type="image/svg+xml", headers={"Cache-Control": "max-age=60"})

    app.router.add_get("/api/checks", list_checks)
    app.router.add_get("/api/checks/{name}/history", check_history)
    app.router.add_get("/badge/{check}.svg", badge)


def _check_json(row: CheckRow) -> dict[str, object]:
    found: dict[str, object] = {
        "name": row.name,
        "type": row.type,
        "status": status_label(row.status),
        "summary": row.summary,
        "last_run": utc(row.last_run) or None,
        "last_latency_seconds": None if row.latency_seconds is None else round(row.latency_seconds, 6),
        "interval_seconds": row.interval_seconds,
        "hold": None if row.hold is None else {"kind": row.hold.kind, "reason": row.hold.reason},
        "flapping": row.flapping,
        "uptime": uptime_json(row.uptime),
    }
    if row.heartbeat:
        ping = row.last_ping
        found["last_ping"] = None if ping is None else {
            "at": utc(ping.at), "kind": ping.kind.value, "exit_status": ping.exit_status, "rid": ping.rid,
        }
    return found


def _bucket_json(start: int, bucket: Bucket) -> dict[str, object]:
    average = bucket.latency_avg
    uptime = bucket.uptime
    return {
        "start": utc(moment(start)),
        "runs": bucket.runs,
        "good_runs": bucket.good,
        "held_runs": bucket.held_runs,
        "uptime": None if uptime is None else round(uptime, 6),
        "latency_avg_seconds": None if average is None else round(average, 6),
        "latency_max_seconds": round(bucket.latency_max, 6) if bucket.runs else None,
    }
