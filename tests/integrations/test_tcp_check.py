"""The TCP check against a local listening port and a closed one."""

import asyncio
from typing import Any

from checks.base import CheckContext
from checks.tcp import TcpCheck
from monitor.model import Severity, Status
from tests.net import closed_port


def make_check(context: CheckContext, port: int, **config: Any) -> TcpCheck:
    settings = {"type": "tcp", "host": "127.0.0.1", "port": port, "timeout": "5s", **config}
    return TcpCheck("db-port", TcpCheck.Config.model_validate(settings), context)


async def test_a_listening_port_is_up(check_context: CheckContext) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        (finding,) = await make_check(check_context, port).run()
    finally:
        server.close()
        await server.wait_closed()

    assert (finding.code, finding.status) == ("down", Status.OK)
    assert finding.summary.startswith(f"127.0.0.1:{port} accepted a connection in ")


async def test_a_closed_port_is_down(check_context: CheckContext) -> None:
    port = closed_port()

    (finding,) = await make_check(check_context, port).run()

    assert (finding.code, finding.status, finding.severity) == ("down", Status.CRITICAL, Severity.P2)
    assert finding.summary == f"127.0.0.1:{port} does not accept connections: connection refused"


async def test_the_down_severity_is_configurable(check_context: CheckContext) -> None:
    (finding,) = await make_check(check_context, closed_port(), severity="P1").run()

    assert finding.severity is Severity.P1


async def test_a_run_past_its_timeout_is_down(check_context: CheckContext) -> None:
    finding = make_check(check_context, 5432).timeout_finding(3)

    assert (finding.code, finding.status) == ("down", Status.CRITICAL)
    assert finding.summary == "127.0.0.1:5432 does not accept connections: no connection within 3s (timeout)"
