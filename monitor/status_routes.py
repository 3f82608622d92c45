"""GET /: the status page, from the overview of every check, its history and the incidents."""

from aiohttp import web

from monitor.overview import OverviewSource, overview
from monitor.status_charts import SPARK_POINTS, SPARK_STEP, STRIP_DAYS
from monitor.status_page import RESOLVED_SHOWN, render_status_page


def add_status_routes(app: web.Application, daemon: OverviewSource) -> None:
    async def status_page(_: web.Request) -> web.Response:
        rows = await overview(daemon)
        days, quarters = await daemon.history.page_series(STRIP_DAYS, SPARK_STEP, SPARK_POINTS)
        recent = await daemon.store.recent_incidents(limit=RESOLVED_SHOWN * 2)
        page = render_status_page(
            monitor=daemon.config.monitor.name,
            checks=rows,
            open_incidents=await daemon.store.open_incidents(),
            resolved_incidents=[incident for incident in recent if not incident.is_open],
            now=daemon.clock.now(),
            days=days,
            quarters=quarters,
        )
        return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})

    app.router.add_get("/", status_page)
