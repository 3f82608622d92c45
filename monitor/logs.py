"""structlog for every log line: JSON when not a TTY, key=value on a TTY, secrets masked."""

import logging
import sys
from typing import Any

import structlog

from monitor.scrub import scrub


def scrub_secrets(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """A processor that runs every text of a log line (tracebacks too) through the scrubber."""
    return {key: scrub(value) if isinstance(value, str) else value for key, value in event.items()}


class _CurrentStderr:
    """Whatever sys.stderr is at write time (tests and daemons swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _StructlogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler `configure` installs on the root logger (replaced, never stacked)."""


def configure(level: str = "info", json: bool | None = None) -> None:
    use_json = not sys.stderr.isatty() if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    stamped: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub_secrets,
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *stamped, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    _route_standard_logging(level, stamped, renderer)


def _route_standard_logging(level: str, processors: list[Any], renderer: Any) -> None:
    """Lines from libraries (aiohttp, asyncio) and warnings take the same form as ours: with
    JSON on, nothing the daemon writes to stderr breaks a line-per-object reader."""
    handler = _StructlogHandler(_CurrentStderr())  # type: ignore[arg-type]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *processors],
        )
    )
    root = logging.getLogger()
    for previous in [h for h in root.handlers if isinstance(h, _StructlogHandler)]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
