"""`GET /api/cluster`: the replicas seen in the last minute, which one leads, since when, its epoch."""

from typing import Protocol

from aiohttp import web

from monitor.cluster.model import ClusterView


class ClusterSource(Protocol):
    async def view(self) -> ClusterView: ...


def add_cluster_routes(app: web.Application, cluster: ClusterSource) -> None:
    async def get_cluster(_: web.Request) -> web.Response:
        return web.json_response((await cluster.view()).as_json())

    app.router.add_get("/api/cluster", get_cluster)
