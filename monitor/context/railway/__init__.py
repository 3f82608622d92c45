"""The Railway provider: the service's deployments, the error log of the one it runs and the
platform's status, gathered into a RailwayContext step by step, so that what arrived before a
timeout is kept and the step still running can be named."""

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import TypeVar

import structlog

from monitor.context.model import RailwayContext
from monitor.context.railway import parse
from monitor.context.railway.client import RailwayClient
from monitor.context.vendor import VendorError

log = structlog.get_logger("monitor.context.railway")

LOG_LOOKBACK = timedelta(minutes=15)
T = TypeVar("T")
MAIN_STEP = ""
"""The deployments query: its failure is the provider's, said without a step name."""


class RailwayProvider:
    name = "Railway"

    def __init__(self, service: str, client: RailwayClient) -> None:
        self.service = service
        self.client = client
        self.steps: set[str] = set()
        """The steps still running, named in the context when the timeout cuts them off."""

    def empty(self) -> RailwayContext:
        return RailwayContext(service=self.service)

    async def gather(self, section: RailwayContext, detected_at: datetime) -> None:
        steps = [self._deployments(section, detected_at)]
        if self.client.entry.status_url:
            steps.append(self._platform(section))
        await asyncio.gather(*steps)

    async def _deployments(self, section: RailwayContext, detected_at: datetime) -> None:
        deployments = await self._step(section, MAIN_STEP, self.client.deployments())
        if deployments is None:
            return
        section.deployments = deployments[:5]
        section.last_deploy = parse.last_deploy(deployments, detected_at)
        section.broken = parse.broken(deployments, detected_at)
        section.rollback_to = parse.rollback_target(deployments)
        running = parse.current(deployments)
        if running is not None:
            lines = await self._step(
                section, "deployment logs", self.client.error_logs(running.id, detected_at - LOG_LOOKBACK)
            )
            section.error_lines = lines or []

    async def _platform(self, section: RailwayContext) -> None:
        section.platform_trouble = await self._step(section, "status page", self.client.platform_trouble())

    async def _step(self, section: RailwayContext, name: str, call: Awaitable[T]) -> T | None:
        self.steps.add(name)
        try:
            return await call
        except VendorError as exc:
            section.problems.append(f"{name}: {exc}" if name else str(exc))
            log.warning("context.vendor_failed", vendor=self.name, service=self.service, step=name or "deployments",
                        error=str(exc))
            return None
        finally:
            self.steps.discard(name)
