"""`type = "console"`: messages printed to standard output, for a person watching the terminal."""

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
        sys.stdout.write(f"\n{message.text}\n")
        sys.stdout.flush()
