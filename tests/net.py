"""Helpers shared by the tests: loopback ports, polling, and an in-process daemon.
Every address the tests use is 127.0.0.1."""

import asyncio
import inspect
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from monitor.config import load_config
from monitor.daemon import Daemon

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for now)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


async def wait_until(condition: Callable[[], object], what: str, limit: float = 20.0) -> None:
    """Poll `condition` (a function, or one returning an awaitable such as a store's read)
    until it is true, failing with `what` after `limit` seconds."""
    deadline = asyncio.get_running_loop().time() + limit
    while not await _holds(condition):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _holds(condition: Callable[[], object]) -> bool:
    result = condition()
    return bool(await result if inspect.isawaitable(result) else result)


closed_port = free_port
"""The same port, when the point is that nothing answers on it."""


@asynccontextmanager
async def running_daemon(config_path: Path, stop_within: float = 15.0) -> AsyncIterator[Daemon]:
    """The daemon on `config_path`, in this event loop, ready; stopped (and awaited) on exit."""
    daemon = Daemon(load_config(config_path))
    task = asyncio.create_task(daemon.run(handle_signals=False))
    try:
        await wait_until(lambda: daemon.ready or task.done(), "the daemon to be ready")
        if task.done():
            task.result()
        yield daemon
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, timeout=stop_within)
