"""`type = "console"`: messages printed to standard output, for a person watching the terminal.
When standard output is not a terminal (a pipe, the journal) each message is one JSON object on
one line, like the daemon's log lines, so `run 2>&1 | jq` keeps working."""

import json
import sys

from alerting.base import Notification, Sink, SinkConfig
from alerting.messages import render


class ConsoleSinkConfig(SinkConfig):
    pass


class ConsoleSink(Sink[ConsoleSinkConfig]):
    type_name = "console"
    Config = ConsoleSinkConfig

    async def send(self, notification: Notification) -> None:
        message = render(notification)
        if sys.stdout.isatty():
            sys.stdout.write(f"\n{message.text}\n")
        else:
            sys.stdout.write(json.dumps(_json_line(self.name, notification, message.text)) + "\n")
        sys.stdout.flush()


def _json_line(sink: str, notification: Notification, text: str) -> dict[str, object]:
    incident = notification.incident
    return {
        "timestamp": notification.created_at.isoformat().replace("+00:00", "Z"),
        "level": "info",
        "event": "notification",
        "sink": sink,
        "kind": notification.kind.value,
        "notification_id": notification.id,
        "incident_id": incident.id,
        "incident": incident.key,
        "severity": incident.severity.value,
        "text": text,
    }
