"""`type = "tcp"`: does the port accept a connection within the timeout?"""

import asyncio
import socket
from typing import Any

from pydantic import Field

from checks.base import Check, CheckConfig, Finding, Severity, Status, format_duration


class TcpCheckConfig(CheckConfig):
    host: str = Field(description="Host name or address to connect to.")
    port: int = Field(ge=1, le=65535)
    severity: Severity = Field(default=Severity.P2, description="Severity when the port does not accept connections.")


class TcpCheck(Check[TcpCheckConfig]):
    type_name = "tcp"
    Config = TcpCheckConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.target = f"{self.config.host}:{self.config.port}"

    async def run(self) -> list[Finding]:
        clock = self.context.clock
        started = clock.monotonic()
        try:
            _, writer = await asyncio.open_connection(self.config.host, self.config.port)
        except socket.gaierror as exc:
            return [self._down(f"DNS lookup failed for {self.config.host}: {exc.strerror or exc}")]
        except ConnectionRefusedError:
            return [self._down("connection refused")]
        except OSError as exc:
            return [self._down(f"cannot connect: {exc.strerror or exc}")]
        latency = clock.monotonic() - started
        writer.transport.abort()
        return [
            Finding(
                code="down",
                status=Status.OK,
                summary=f"{self.target} accepted a connection in {format_duration(latency)}",
                values={"latency_seconds": latency},
            )
        ]

    def timeout_finding(self, seconds: float) -> Finding:
        return self._down(f"no connection within {format_duration(seconds)} (timeout)")

    def _down(self, reason: str) -> Finding:
        return Finding(
            code="down",
            status=Status.CRITICAL,
            summary=f"{self.target} does not accept connections: {reason}",
            severity=self.config.severity,
            blocks=("*",),
        )
