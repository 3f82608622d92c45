"""What `health-monitor action` does (its arguments are in monitor/context/cli.py).

The command talks to Railway itself, so that it works while the daemon is busy or down,
and leaves what it did in the state store: the daemon (the one writer of incidents) puts it
on the incident's timeline and in incidents.log, as it does with `ack`."""

import argparse
import asyncio
import sys
from datetime import UTC, datetime

import aiohttp

from monitor.config import Config
from monitor.context import actions
from monitor.model import Incident
from monitor.side_stores import side_stores_of
from monitor.store import StoreError, StoreUnavailable


def run_action(config: Config, incident: Incident, args: argparse.Namespace) -> int:
    """Run the action asked for on `incident` (found by `monitor.commands.action`)."""
    if not args.yes and not sys.stdin.isatty():
        return _fail("not on a terminal: add --yes to run the action without confirmation")
    try:
        return asyncio.run(_act(config, incident, args))
    except actions.ActionError as exc:
        return _fail(str(exc))


async def _act(config: Config, incident: Incident, args: argparse.Namespace) -> int:
    async with aiohttp.ClientSession() as http:
        client = actions.client_for(config.settings.context, incident, http)
        chosen = await actions.plan(client, args.action, args.to)
        if not args.yes and not _confirmed(chosen, incident):
            print("nothing done")
            return 1
        succeeded, text = await actions.run(client, chosen, args.by)
    print(text)
    try:
        async with side_stores_of(config.monitor) as side:
            await side.journal.record_action(incident.id, datetime.now(UTC), args.by, text)
    except (StoreError, StoreUnavailable) as exc:
        return _fail(f"the action ran but could not be recorded on incident #{incident.id}: {exc}")
    print(f"recorded on incident #{incident.id}; the running daemon adds it to the timeline and incidents.log")
    return 0 if succeeded else 1


def _confirmed(chosen: actions.Plan, incident: Incident) -> bool:
    answer = input(f"Run {chosen.describe()} for incident #{incident.id} ({incident.key}) on Railway? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1
