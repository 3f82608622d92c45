"""`type = "email"`: one multipart message per notification (the plain-text playbook message
and an HTML copy with every inserted character escaped) over SMTP, in the clear, with
STARTTLS or with implicit TLS, logging in only when a username is configured."""

import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from urllib.parse import quote

import aiosmtplib
from pydantic import ConfigDict, Field, FilePath, field_validator, model_validator

from alerting.base import (
    DeliveryError,
    Notification,
    NotificationKind,
    SecretEnv,
    Severity,
    Sink,
    SinkConfig,
    format_duration,
)
from alerting.messages import render, render_template

_SEVERITY_COLOURS = {Severity.P1: "#d1242f", Severity.P2: "#e36209", Severity.P3: "#d4a72c", Severity.P4: "#2da44e"}
_RESOLVED_COLOUR = "#2da44e"
_FALLBACK_DOMAIN = "health-monitor.invalid"


class Security(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


class EmailSinkConfig(SinkConfig):
    model_config = ConfigDict(populate_by_name=True)

    smtp_host: str = Field(min_length=1, description="SMTP server host name or address.")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP server port.")
    security: Security = Field(default=Security.NONE, description="none, starttls, or tls (implicit TLS).")
    username: str | None = Field(default=None, description="Log in as this user; no login when unset.")
    password_env: SecretEnv | None = Field(default=None, description="Environment variable holding the password.")
    sender: str = Field(alias="from", description="The From address, e.g. 'Health Monitor <monitor@example.com>'.")
    to: list[str] = Field(min_length=1, description="Recipients.")
    ca_file: FilePath | None = Field(default=None, description="PEM file of the CA(s) that signed the server's cert.")

    @field_validator("sender")
    @classmethod
    def _sender_is_an_address(cls, value: str) -> str:
        return _address(value)

    @field_validator("to")
    @classmethod
    def _recipients_are_addresses(cls, value: list[str]) -> list[str]:
        return [_address(item) for item in value]

    @field_validator("ca_file")
    @classmethod
    def _ca_file_is_pem(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                ssl.create_default_context(cafile=str(value))
            except ssl.SSLError as exc:
                raise ValueError(f"{value} holds no usable PEM certificate ({exc.reason})") from None
        return value

    @model_validator(mode="after")
    def _login_needs_both(self) -> "EmailSinkConfig":
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together: set both to log in, or neither")
        return self

    @property
    def envelope_sender(self) -> str:
        return parseaddr(self.sender)[1]


def _address(value: str) -> str:
    if "@" not in parseaddr(value)[1]:
        raise ValueError(f"{value!r} is not an email address")
    return value


def headline_severity(notification: Notification) -> Severity:
    """The incident's severity, or for a grouped message the most urgent in the group."""
    incidents = notification.group or (notification.incident,)
    return min((incident.severity for incident in incidents), key=lambda severity: severity.rank)


def subject(notification: Notification) -> str:
    text = render_template(
        "email/subject.txt.j2",
        kind=notification.kind,
        incident=notification.incident,
        severity=headline_severity(notification),
        group=notification.group,
    )
    return " ".join(text.split())


def html_body(notification: Notification, subject_line: str) -> str:
    message = render(notification)
    severity = headline_severity(notification)
    resolved = notification.kind is NotificationKind.RESOLUTION
    return render_template(
        "email/body.html.j2",
        subject=subject_line,
        title=message.title,
        text=message.text,
        monitor=notification.monitor,
        incident=notification.incident,
        group=notification.group,
        severity=severity,
        colour=_RESOLVED_COLOUR if resolved else _SEVERITY_COLOURS[severity],
    )


def message_id(notification: Notification, domain: str, *, thread: bool = False) -> str:
    """A Message-ID stable across retries; with `thread`, the id every message about the
    incident refers to, so that mail clients show them as one conversation."""
    incident = notification.incident
    opened = int(incident.opened_at.timestamp())
    local = f"incident.{incident.id}" if thread else quote(notification.id, safe="")
    return f"<{local}.{opened}.{quote(notification.monitor, safe='')}@{domain}>"


def build_message(notification: Notification, config: EmailSinkConfig, now: datetime) -> EmailMessage:
    subject_line = subject(notification)
    domain = config.envelope_sender.rpartition("@")[2] or _FALLBACK_DOMAIN
    message = EmailMessage()
    message["Subject"] = subject_line
    message["From"] = config.sender
    message["To"] = ", ".join(config.to)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id(notification, domain)
    if notification.kind is not NotificationKind.GROUPED:
        message["References"] = message_id(notification, domain, thread=True)
    message["X-Health-Monitor-Notification"] = notification.id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render(notification).text)
    message.add_alternative(html_body(notification, subject_line), subtype="html")
    return message


class EmailSink(Sink[EmailSinkConfig]):
    type_name = "email"
    Config = EmailSinkConfig

    async def send(self, notification: Notification) -> None:
        config = self.config
        message = build_message(notification, config, self.context.clock.now())
        try:
            refused, _ = await aiosmtplib.send(
                message,
                sender=config.envelope_sender,
                recipients=config.to,
                hostname=config.smtp_host,
                port=config.smtp_port,
                username=config.username,
                password=config.password_env.value() if config.password_env else None,
                use_tls=config.security is Security.TLS,
                start_tls=config.security is Security.STARTTLS,
                tls_context=self._tls_context,
                timeout=config.timeout,
            )
        except aiosmtplib.SMTPException as exc:
            raise self._delivery_error(exc) from None
        except ssl.SSLError as exc:
            reason = exc.verify_message if isinstance(exc, ssl.SSLCertVerificationError) else exc.reason
            raise DeliveryError(f"TLS with SMTP server {self._server} failed: {reason}") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise DeliveryError(f"SMTP server {self._server} unreachable: {reason}") from None
        if refused:
            codes = [(recipient, reply.code) for recipient, reply in refused.items()]
            raise DeliveryError(
                f"SMTP server {self._server} refused {len(refused)} of {len(config.to)} recipients "
                f"({_describe_refusals(codes)}); the others received the message",
                retryable=False,
            )

    @cached_property
    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.ca_file is None:
            return None
        return ssl.create_default_context(cafile=str(self.config.ca_file))

    @property
    def _server(self) -> str:
        return f"{self.config.smtp_host}:{self.config.smtp_port}"

    def _delivery_error(self, exc: aiosmtplib.SMTPException) -> DeliveryError:
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            codes = [(item.recipient, item.code) for item in exc.recipients]
            return DeliveryError(
                f"SMTP server {self._server} refused every recipient ({_describe_refusals(codes)})",
                retryable=any(code < 500 for _, code in codes),
            )
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            reply = exc.message[:200]
            what = "rejected the login" if isinstance(exc, aiosmtplib.SMTPAuthenticationError) else "answered"
            return DeliveryError(f"SMTP server {self._server} {what}: {exc.code} {reply}", retryable=exc.code < 500)
        if isinstance(exc, aiosmtplib.SMTPTimeoutError):
            limit = format_duration(self.config.timeout)
            return DeliveryError(f"SMTP server {self._server} did not answer within {limit}")
        if isinstance(exc, ConnectionError):
            return DeliveryError(f"SMTP server {self._server} unreachable: {exc.message}")
        # The server lacks what the config asks for (STARTTLS, AUTH): no retry can fix that.
        return DeliveryError(f"SMTP server {self._server}: {exc.message}", retryable=False)


def _describe_refusals(codes: list[tuple[str, int]]) -> str:
    return ", ".join(f"{recipient}: {code}" for recipient, code in codes)
