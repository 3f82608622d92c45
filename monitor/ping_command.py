"""`health-monitor ping CHECK [--start|--fail|--exit N] [--body-file F]` (arguments in
monitor/cli.py): a ping from scripts that have no curl, sent to the running daemon's
`/ping/...` with the check's token (read from the variable its `token_env` names)."""

import argparse
import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from monitor.config import Config
from monitor.pings import BODY_LIMIT

PING_TIMEOUT_SECONDS = 10.0


class PingError(Exception):
    """One line for stderr: why the ping was not taken."""


def ping_path(args: argparse.Namespace) -> str:
    suffix = "/start" if args.start else "/fail" if args.fail else f"/{args.exit}" if args.exit is not None else ""
    return f"/ping/{args.check}{suffix}"


def daemon_url(config: Config) -> str:
    """The daemon's own address, with a wildcard listen address reached on loopback."""
    host, port = config.server.host, config.server.port
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def send_ping(config: Config, args: argparse.Namespace) -> str:
    """Send it; the daemon's answer, or PingError."""
    check = config.checks.get(args.check)
    if check is None or not check.accepts_pings:
        raise PingError(f"no heartbeat check named {args.check!r} in {config.path}")
    if args.exit is not None and not 0 <= args.exit <= 255:
        raise PingError(f"--exit {args.exit}: an exit status is 0 to 255")
    headers = {}
    secret = check.ping_token()
    if secret is not None:
        token = os.environ.get(secret.variable)
        if not token:
            variable = secret.variable
            raise PingError(f"check {args.check!r} needs its token: environment variable {variable} is not set")
        headers["Authorization"] = f"Bearer {token}"
    body = _body(args.body_file)
    params = {"rid": args.rid} if args.rid else {}
    url = daemon_url(config) + ping_path(args)
    return asyncio.run(_post(url, body, headers, params))


def _body(path: str | None) -> bytes:
    if path is None:
        return b""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise PingError(f"--body-file {path}: {exc.strerror or exc}") from None
    return data[-BODY_LIMIT:]


async def _post(url: str, body: bytes, headers: dict[str, str], params: dict[str, str]) -> str:
    timeout = aiohttp.ClientTimeout(total=PING_TIMEOUT_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=body, headers=headers, params=params) as response,
        ):
            text = await response.text()
            if response.status != 200:
                raise PingError(f"the daemon at {url} refused the ping: HTTP {response.status} {text.strip()}")
            return text.strip()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PingError(f"cannot reach the daemon at {url}: {exc or type(exc).__name__}") from None
