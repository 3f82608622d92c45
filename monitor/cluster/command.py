"""`health-monitor cluster [--format table|json]`: what `GET /api/cluster` shows, read from the
state store itself, so that it works while the daemon is down. Exits 1 when no replica leads."""

import argparse
import json
import sqlite3
import sys
from datetime import UTC, datetime

from monitor.cluster.single import SqliteMembership
from monitor.cluster.view import render_text
from monitor.config import load_config

CLUSTER_HELP = "Show the replicas seen in the last minute, which one leads, since when, and its epoch."


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["table", "json"], default="table")


def run_cluster_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    now = datetime.now(UTC)
    try:
        membership = SqliteMembership(config.monitor.state_path)
        try:
            view = membership.view(now)
        finally:
            membership.close()
    except sqlite3.Error as exc:
        print(f"error: cannot read the state store {config.monitor.state_path}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(view.as_json(), indent=2) if args.format == "json" else render_text(view, now))
    return 0 if view.leader is not None else 1
