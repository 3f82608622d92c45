"""`type = "file"`: every message appended in full to a file, one block per notification."""

from pathlib import Path

from pydantic import Field

from alerting.base import Notification, Sink, SinkConfig, utc_stamp
from alerting.messages import render


class LogFileSinkConfig(SinkConfig):
    path: str = Field(default="alerts.log", description="File the messages are appended to.")


class LogFileSink(Sink[LogFileSinkConfig]):
    type_name = "file"
    Config = LogFileSinkConfig

    async def send(self, notification: Notification) -> None:
        message = render(notification)
        path = Path(self.config.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = f"----- {utc_stamp(notification.created_at)} {notification.kind.value} {notification.id}\n"
        with path.open("a", encoding="utf-8") as file:  # noqa: ASYNC230 - one small append
            file.write(header + message.text + "\n")
