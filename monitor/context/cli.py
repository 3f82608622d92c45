"""The arguments of `health-monitor action ID restart|redeploy|rollback [--to DEPLOYMENT]
[--by NAME] [--yes]`; light to import, so the parser stays fast. The command itself is
monitor/context/command.py."""

import argparse
import getpass

from monitor.context import ACTIONS

ACTION_HELP = "Restart, redeploy or roll back the Railway service of an incident ([context.railway])."


def add_action_arguments(action: argparse.ArgumentParser) -> None:
    action.add_argument("id", type=int, help="incident id")
    action.add_argument("action", choices=ACTIONS)
    action.add_argument("--to", metavar="DEPLOYMENT", help="rollback target (default: the last SUCCESS before the "
                        "current deployment that can be rolled back to)")
    action.add_argument("--by", default=getpass.getuser(), help="who runs it (default: your user name)")
    action.add_argument("--yes", action="store_true", help="run without asking (required when not on a terminal)")
