"""Loopback helpers shared by the tests: every address they use is 127.0.0.1."""

import asyncio
import socket
from collections.abc import Callable

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for now)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


async def wait_until(condition: Callable[[], object], what: str, limit: float = 20.0) -> None:
    """Poll `condition` until it is true, failing with `what` after `limit` seconds."""
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


closed_port = free_port
"""The same port, when the point is that nothing answers on it."""
