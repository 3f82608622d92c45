"""`health-monitor`: the command line. Parsing only, so `--version` and `--help` answer
without importing the daemon; the commands themselves live in `monitor.commands`.

Exit statuses: 2 means the config (or the command line) is invalid and retrying cannot help;
1 is any other failure (systemd retries it); `once` follows the Nagios plugin convention
(0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN when it cannot run at all)."""

import argparse
import getpass
import os
import sys
from collections.abc import Sequence

from monitor import __version__, event_loop
from monitor.context.cli import ACTION_HELP, add_action_arguments

EXIT_FAILURE = 1
EXIT_CONFIG_ERROR = 2
EXIT_UNKNOWN = 3
"""`once` could not run the checks (Nagios's UNKNOWN)."""

RUN_EPILOG = """\
examples:
  health-monitor run                                   ./monitor.toml (or $MONITOR_CONFIG)
  health-monitor run --config /etc/health-monitor/monitor.toml
  health-monitor run --interval 30s --log-level debug
  health-monitor run 2>&1 | jq .                       not on a terminal, every line is JSON

exit statuses:
  0  stopped by SIGTERM or SIGINT
  1  could not start: port in use, state store unreadable, corrupt or on a read-only path
     (one line names the path and the cause; systemd restarts the unit)
  2  invalid config or command line (every mistake is listed; a restart cannot fix it)
"""

ONCE_EPILOG = """\
examples:
  health-monitor once                                  every check, as a table
  health-monitor once --config /etc/health-monitor/monitor.toml --check api --format json
  health-monitor once --notify                         from cron: also open/resolve incidents and page

exit statuses (as a Nagios plugin):
  0  OK        every check passed
  1  WARNING   the worst finding is a warning
  2  CRITICAL  the worst finding is critical
  3  UNKNOWN   the checks could not be run: invalid config, unknown --check, unusable state store
"""

CLUSTER_HELP = "Show the replicas seen in the last minute, which one leads, since when, and its epoch."
CLUSTER_EPILOG = """\
exit statuses: 0 a replica leads, 1 none does (or the state store cannot be read), 2 invalid config.
Secrets (*_env) need not be set for this command.
"""

OPERATOR_EPILOG = """\
exit statuses: 0 done (also when there was nothing to do), 1 failed (no such incident, no state
store), 2 invalid config. Secrets (*_env) need not be set for this command.
"""


class Parser(argparse.ArgumentParser):
    """Usage mistakes exit like an invalid config (2), or 3 (UNKNOWN) for `once`."""

    def __init__(self, *args: object, usage_exit: int = EXIT_CONFIG_ERROR, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.usage_exit = usage_exit
        self.commands: dict[str, argparse.ArgumentParser] = {}

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(self.usage_exit, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command's parser, so that `once` exits 3 for it too
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # The reader went away (`schema | head`): what is left unprinted is not wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from monitor import commands
    from monitor.config import ConfigError

    try:
        return int(getattr(commands, args.handler)(args))
    except ConfigError as exc:
        commands.report(args, exc.problems, event="config.invalid")
        return args.config_exit
    except commands.CommandError as exc:
        commands.report(args, [str(exc)], event=args.failure_event)
        return args.failure_exit


def add_ping_arguments(ping: argparse.ArgumentParser) -> None:
    ping.add_argument("check", help="the heartbeat check's name")
    kind = ping.add_mutually_exclusive_group()
    kind.add_argument("--start", action="store_true", help="the run starts now")
    kind.add_argument("--fail", action="store_true", help="the run failed")
    kind.add_argument("--exit", type=int, metavar="N", help="the run ended with exit status N (0 success)")
    ping.add_argument("--body-file", metavar="F", help='the run\'s log ("-" for stdin); its last 100 KiB are kept')
    ping.add_argument("--rid", help="run id pairing --start with the end of the same run")


def _parser() -> Parser:
    parser = Parser(
        prog="health-monitor",
        description="Runs health checks and turns their findings into P1-P4 incidents.",
        epilog="Run `health-monitor COMMAND --help` for a command's examples and exit statuses.",
    )
    parser.add_argument("--version", action="version", version=f"health-monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def command(
        name: str, handler: str, help_text: str, epilog: str | None = OPERATOR_EPILOG, unknown: bool = False
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help_text, description=help_text, epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            usage_exit=EXIT_UNKNOWN if unknown else EXIT_CONFIG_ERROR,
        )
        sub.add_argument("--config", metavar="PATH", help="config file (default: $MONITOR_CONFIG or ./monitor.toml)")
        parser.commands[name] = sub
        sub.set_defaults(
            handler=handler,
            config_exit=EXIT_UNKNOWN if unknown else EXIT_CONFIG_ERROR,
            failure_exit=EXIT_UNKNOWN if unknown else EXIT_FAILURE,
            failure_event="command.failed",
        )
        return sub

    run = command("run", "run", "Run every check on its schedule until SIGTERM or SIGINT.", RUN_EPILOG)
    run.add_argument("--interval", help="default interval for checks that set none, e.g. 60s")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument(
        "--loop", default="auto", choices=event_loop.LOOP_NAMES, help="event loop (default: uvloop where installed)"
    )
    run.set_defaults(failure_event="daemon.start_failed")

    once = command(
        "once", "once", "Run every (or the named) check once and print the findings.", ONCE_EPILOG, unknown=True
    )
    once.add_argument("--check", action="append", default=[], metavar="NAME", help="only this check (repeatable)")
    once.add_argument("--format", choices=["table", "json"], default="table")
    once.add_argument(
        "--notify",
        action="store_true",
        help="also open and resolve incidents in the state store and send their notifications (for cron, "
        "without a running daemon): a failing run opens at once, a good run resolves",
    )

    command(
        "check-config", "check_config", "Validate the config (secrets included) and summarise it.",
        "exit statuses: 0 valid, 2 invalid (every mistake is listed, one line each).",
    )

    incidents = command("incidents", "incidents", "List open (or all recent) incidents from the state store.")
    incidents.add_argument("--all", action="store_true", help="include resolved incidents")
    incidents.add_argument("--format", choices=["table", "json"], default="table")

    ack = command("ack", "ack", "Acknowledge an incident: escalation stops.")
    ack.add_argument("id", type=int, help="incident id")
    ack.add_argument("--by", default=getpass.getuser(), help="who takes it (default: your user name)")
    ack.add_argument("--note", default="", help="what you are doing about it")

    add_action_arguments(command("action", "action", ACTION_HELP))
    add_ping_arguments(command(
        "ping", "ping", "Tell the running daemon that a heartbeat check's run succeeded, started or failed.",
        "exit statuses: 0 the daemon took the ping, 1 it did not (unreachable, refused), 2 invalid config.",
    ))

    cluster = command("cluster", "cluster", CLUSTER_HELP, CLUSTER_EPILOG)
    cluster.add_argument("--format", choices=["table", "json"], default="table")

    postmortem = command("postmortem", "postmortem", "Print (or write) the post-mortem draft of an incident.")
    postmortem.add_argument("id", type=int, help="incident id")
    postmortem.add_argument("--output", metavar="FILE", help="write to FILE instead of printing")

    silence = command("silence", "silence_list", "Silence a check: findings are recorded, no one is notified.")
    actions = silence.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    add = actions.add_parser("add", help="silence a check for a while")
    add.add_argument("--check", required=True, help='check name, or "*" for every check')
    add.add_argument("--for", dest="duration", required=True, help="how long, e.g. 1h")
    add.add_argument("--reason", required=True)
    add.set_defaults(handler="silence_add")
    listing = actions.add_parser("list", help="active and upcoming silences")
    listing.set_defaults(handler="silence_list")
    remove = actions.add_parser("remove", help="end a silence now")
    remove.add_argument("id", type=int)
    remove.set_defaults(handler="silence_remove")
    for sub in (add, listing, remove):
        sub.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file")

    command(
        "migrate", "migrate", "Bring the state store's schema to this release's version (every start does it too).",
        "exit statuses: 0 done (also when it was up to date), 1 failed (unreadable, corrupt, or written by a\n"
        "newer release: the file is left as it was), 2 invalid config.",
    )

    schema_help = "Print the JSON Schema of monitor.toml (for editor completion: Taplo, Even Better TOML)."
    schema = commands.add_parser("schema", help=schema_help, description=schema_help)
    parser.commands["schema"] = schema
    schema.set_defaults(
        handler="schema", config_exit=EXIT_CONFIG_ERROR, failure_exit=EXIT_FAILURE, failure_event="command.failed"
    )
    return parser
