"""What `health-monitor cluster` shows, read from the state store itself so that it works while
the daemon is down: the same view as `GET /api/cluster`."""

import json
from datetime import UTC, datetime

from monitor.cluster.model import ClusterView
from monitor.cluster.view import render_text
from monitor.config import Config
from monitor.side_stores import side_stores_of


async def read_cluster(config: Config, now: datetime) -> ClusterView:
    """Raises StoreError or StoreUnavailable when the state store cannot be read."""
    async with side_stores_of(config.monitor) as side:
        return await side.membership.view(now)


def print_cluster(view: ClusterView, output_format: str, now: datetime | None = None) -> int:
    """0 when a replica leads, 1 when none does."""
    if output_format == "json":
        print(json.dumps(view.as_json(), indent=2))
    else:
        print(render_text(view, now or datetime.now(UTC)))
    return 0 if view.leader is not None else 1
