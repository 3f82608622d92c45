"""The playbook's `incidents.log`: one line per incident event, appended and flushed at once.

    2026-11-26T19:05:00Z: Incident detected - [P1] api: GET http://... failed: connection refused
"""

from datetime import datetime
from pathlib import Path

from monitor.model import Incident


def utc_stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class IncidentLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, at: datetime, event: str, incident: Incident, text: str) -> None:
        one_line = " ".join(text.split())
        line = f"{utc_stamp(at)}: Incident {event} - [{incident.severity.value}] {incident.check}: {one_line}\n"
        with self.path.open("a", encoding="utf-8") as log:
            log.write(line)
