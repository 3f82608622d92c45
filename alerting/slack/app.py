"""App mode of the Slack sink: one thread per incident.

The first notification of an incident posts its parent message (chat.postMessage) and keeps
the message's `ts` (alerting/slack/threads.py); every later one is a reply in that thread,
and the parent is edited (chat.update) to show the current state. The sink's queue serves
the most severe first, so a reply can be taken before its incident's initial alert: when no
thread is known yet, the sink posts the parent itself, then the reply. A parent posted twice
cannot happen either: the initial alert retried after its parent went out only updates it.

A grouped storm message (several initial alerts at once) is one channel message, without
buttons: each incident it announces gets its own thread (parent with buttons) the first time
more is said about it. A grouped resolution or status update is one channel message, and
each announced incident's parent is updated (turning green for a resolution)."""

from typing import Any

import structlog

from alerting.base import DeliveryError, Incident, Notification, NotificationKind, SecretEnv, Severity, SinkContext
from alerting.slack.cockpit import parent_message, thread_reply
from alerting.slack.message import build_payload
from alerting.slack.threads import MemoryThreads, SlackThread, ThreadStore
from alerting.slack.web_api import SlackWebApi

log = structlog.get_logger("alerting.slack")


class SlackApp:
    def __init__(self, sink: str, *, token: SecretEnv, channel: str, api_url: str, mention: dict[Severity, str],
                 buttons: bool, timeout: float, context: SinkContext) -> None:
        self.sink = sink
        self.channel = channel
        self.mention = mention
        self.buttons = buttons
        self.clock = context.clock
        self.api = SlackWebApi(context.http, api_url, token, timeout, context.clock)
        self.threads: ThreadStore = context.slack_threads or MemoryThreads()

    async def send(self, notification: Notification) -> None:
        if notification.kind is NotificationKind.GROUPED or notification.group:
            await self._send_grouped(notification)
            return
        incident = notification.incident
        thread = await self.threads.thread(self.sink, incident.id)
        if thread is None:
            thread = await self._post_parent(incident, notification.monitor)
            if notification.kind is NotificationKind.INITIAL:
                return
        elif notification.kind is NotificationKind.INITIAL:
            await self._update_quietly(incident, notification.monitor, thread)
            return
        reply = thread_reply(notification, thread, self.mention.get(incident.severity))
        await self.api.call("chat.postMessage", reply)
        await self._update_quietly(incident, notification.monitor, thread)

    async def show(self, incident: Incident, monitor: str) -> bool:
        """Edit the incident's parent message to its current state now; False when it has none here."""
        thread = await self.threads.thread(self.sink, incident.id)
        if thread is None:
            return False
        await self._update(incident, monitor, thread)
        return True

    async def _post_parent(self, incident: Incident, monitor: str) -> SlackThread:
        answer = await self.api.call("chat.postMessage", self._parent(incident, monitor) | {"channel": self.channel})
        thread = SlackThread(str(answer.get("channel") or self.channel), str(answer["ts"]))
        await self.threads.remember(self.sink, incident.id, thread)
        return thread

    async def _send_grouped(self, notification: Notification) -> None:
        if notification.kind is not NotificationKind.GROUPED:
            for incident in notification.group:
                thread = await self.threads.thread(self.sink, incident.id)
                if thread is not None:
                    await self._update_quietly(incident, notification.monitor, thread)
        await self.api.call("chat.postMessage", build_payload(notification) | {"channel": self.channel})

    async def _update_quietly(self, incident: Incident, monitor: str, thread: SlackThread) -> None:
        """The parent shows the current state; after the reply went out, failing to edit it must not
        send the reply again (the next notification edits it anyway)."""
        try:
            await self._update(incident, monitor, thread)
        except DeliveryError as exc:
            log.warning("slack.parent_not_updated", sink=self.sink, incident=incident.id, error=str(exc))

    async def _update(self, incident: Incident, monitor: str, thread: SlackThread) -> None:
        where = {"channel": thread.channel, "ts": thread.ts}
        await self.api.call("chat.update", self._parent(incident, monitor) | where)

    def _parent(self, incident: Incident, monitor: str) -> dict[str, Any]:
        return parent_message(incident, monitor=monitor, now=self.clock.now(),
                              mention=self.mention.get(incident.severity), buttons=self.buttons)
