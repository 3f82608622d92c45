"""`type = "slack"`, in two modes. Webhook mode (`webhook_url_env`): one incoming-webhook
message per notification. App mode (`bot_token_env` and `channel`): one thread per incident,
its parent message edited to show the current state, with buttons when `signing_secret_env`
is set (alerting/slack/app.py; the buttons' endpoint is alerting/slack/endpoints.py)."""

import aiohttp
from pydantic import Field, model_validator

from alerting.base import DeliveryError, Incident, Notification, SecretEnv, Severity, Sink, SinkConfig, SinkContext
from alerting.slack.app import SlackApp
from alerting.slack.message import MAX_BLOCKS, MAX_SECTION_CHARS, build_payload, slack_escape, truncate

__all__ = ["MAX_BLOCKS", "MAX_SECTION_CHARS", "SlackSink", "SlackSinkConfig", "build_payload", "slack_escape",
           "truncate"]

_MIN_SECONDS_BETWEEN_MESSAGES = 1.0
DEFAULT_API_URL = "https://slack.com/api/"


class SlackSinkConfig(SinkConfig):
    webhook_url_env: SecretEnv | None = Field(
        default=None, description="Environment variable holding the incoming-webhook URL (webhook mode)."
    )
    bot_token_env: SecretEnv | None = Field(
        default=None, description="Environment variable holding the app's bot token, xoxb-... (app mode)."
    )
    channel: str | None = Field(default=None, min_length=1, description="App mode: the channel id (C0123456789).")
    signing_secret_env: SecretEnv | None = Field(
        default=None, description="App mode: environment variable holding the app's signing secret (buttons on)."
    )
    api_url: str = Field(default=DEFAULT_API_URL, description="App mode: Slack's Web API base URL.")
    mention: dict[Severity, str] = Field(
        default_factory=dict, description="App mode: who is pinged per severity, e.g. <!subteam^S0123> (trusted text)."
    )

    @model_validator(mode="after")
    def _one_mode(self) -> "SlackSinkConfig":
        if (self.webhook_url_env is None) == (self.bot_token_env is None):
            raise ValueError("set webhook_url_env (webhook mode) or bot_token_env with channel (app mode), not both")
        if self.bot_token_env is not None and self.channel is None:
            raise ValueError("app mode (bot_token_env) needs channel, the channel id such as C0123456789")
        if self.webhook_url_env is not None:
            app_keys = [key for key in ("channel", "signing_secret_env", "mention") if getattr(self, key)]
            if app_keys:
                raise ValueError(f"{', '.join(app_keys)} belong to app mode (bot_token_env), not webhook mode")
        return self


class SlackSink(Sink[SlackSinkConfig]):
    type_name = "slack"
    Config = SlackSinkConfig

    _last_sent_at: float | None = None

    def __init__(self, name: str, config: SlackSinkConfig, context: SinkContext) -> None:
        super().__init__(name, config, context)
        self.app: SlackApp | None = None
        if config.bot_token_env is not None and config.channel is not None:
            self.app = SlackApp(
                name, token=config.bot_token_env, channel=config.channel, api_url=config.api_url,
                mention=config.mention, buttons=config.signing_secret_env is not None, timeout=config.timeout,
                context=context,
            )

    @property
    def signing_secret(self) -> str | None:
        """The app's signing secret, when its buttons and slash command are on."""
        secret = self.config.signing_secret_env
        return secret.value() if secret is not None and self.app is not None else None

    async def show(self, incident: Incident, monitor: str) -> bool:
        """App mode: edit the incident's parent message to its current state (False without one)."""
        return await self.app.show(incident, monitor) if self.app is not None else False

    async def send(self, notification: Notification) -> None:
        if self.app is not None:
            await self.app.send(notification)
            return
        assert self.config.webhook_url_env is not None
        await self._respect_rate_limit()
        payload = build_payload(notification)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        try:
            async with self.context.http.post(
                self.config.webhook_url_env.value(), json=payload, timeout=timeout
            ) as response:
                self._last_sent_at = self.context.clock.monotonic()
                if response.status == 200:
                    return
                reason = (await response.text())[:200]
                raise _delivery_error(response.status, reason, response.headers.get("Retry-After"))
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"Slack webhook unreachable: {type(exc).__name__}") from None
        except TimeoutError:
            raise DeliveryError(f"Slack webhook did not answer within {self.config.timeout}s") from None

    async def _respect_rate_limit(self) -> None:
        if self._last_sent_at is not None:
            await self.context.clock.sleep_until(self._last_sent_at + _MIN_SECONDS_BETWEEN_MESSAGES)


def _delivery_error(status: int, reason: str, retry_after: str | None) -> DeliveryError:
    if status == 429:
        wait = float(retry_after) if retry_after and retry_after.isdigit() else None
        return DeliveryError(f"Slack rate-limited the webhook (429 {reason})", retry_after=wait)
    if status >= 500:
        return DeliveryError(f"Slack answered {status} {reason}")
    return DeliveryError(f"Slack rejected the message: {status} {reason}", retryable=False)
