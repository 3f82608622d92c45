"""The playbook's post-mortem template, filled in with everything the daemon knows: the
timeline, impact figures, evidence and the delivery log. Root cause, lessons and action
items stay clearly marked blanks for the humans."""

import asyncio
from datetime import datetime
from functools import cache
from pathlib import Path

import jinja2
import structlog

from monitor.context.render import incident_lines
from monitor.durations import format_duration
from monitor.incident_log import utc_stamp
from monitor.model import Incident
from monitor.store import Delivery, StateStore

log = structlog.get_logger("monitor.postmortem")


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("monitor", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    return environment.get_template("postmortem.md.j2")


def render_postmortem(incident: Incident, deliveries: list[Delivery], monitor: str, now: datetime) -> str:
    def since_page(moment: datetime | None) -> str:
        start = incident.paged_at or incident.opened_at
        return format_duration((moment - start).total_seconds()) if moment else "not yet"

    return _template().render(
        incident=incident,
        monitor=monitor,
        deliveries=deliveries,
        diagnosis=incident_lines(incident),
        duration=format_duration(incident.duration_seconds(now)),
        time_to_acknowledge=since_page(incident.acknowledged_at),
        time_to_resolve=since_page(incident.resolved_at),
        stamp=utc_stamp,
    )


async def write_draft(incident: Incident, store: StateStore, monitor: str, now: datetime) -> Path | None:
    """Write the draft to the incident's `postmortem_path` (set when a paged P1 or P2
    resolves); a failure to write is logged, never raised into the incident flow."""
    if incident.postmortem_path is None:
        return None
    path = Path(incident.postmortem_path)
    draft = render_postmortem(incident, await store.deliveries_for(incident.id), monitor, now)
    try:
        await asyncio.to_thread(_write, path, draft)
    except OSError as exc:
        log.error("postmortem.not_written", incident=incident.id, error=str(exc))
        return None
    log.info("postmortem.written", incident=incident.id, path=str(path))
    return path


def _write(path: Path, draft: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(draft, encoding="utf-8")
