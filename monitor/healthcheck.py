"""`python -m monitor.healthcheck [--config PATH]`: the container image's HEALTHCHECK.

Asks the daemon's /healthz (200 while the scheduler loop is alive) at the address it listens
on: `[server] listen` of the config ($MONITOR_CONFIG, as for every command), or
$MONITOR_SERVER__LISTEN when set, with a wildcard address asked on loopback. Exit 0 healthy,
1 unhealthy, as Docker wants. Standard library only for the request: the image has no curl.
"""

import argparse
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from monitor.config import ConfigError, load_config

WILDCARD_HOSTS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}
TIMEOUT = 4.0  # seconds; under the HEALTHCHECK's --timeout=5s
# A proxy from the environment must not see (or break) a request to ourselves.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def healthz_url(host: str, port: int) -> str:
    host = WILDCARD_HOSTS.get(host, host)
    return f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.healthcheck", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="monitor.toml (default: $MONITOR_CONFIG, else ./monitor.toml)")
    args = parser.parse_args(argv)
    try:
        server = load_config(args.config).server
    except ConfigError as exc:
        print(f"unhealthy: {exc.problems[0]}", file=sys.stderr)
        return 1
    url = healthz_url(server.host, server.port)
    try:
        with _OPENER.open(url, timeout=TIMEOUT) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
