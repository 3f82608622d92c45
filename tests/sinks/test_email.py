"""Email: subjects from the contract, both MIME parts, escaping, and delivery through a real
SMTP server in the clear, with STARTTLS and login, and with implicit TLS."""

from pathlib import Path
from typing import Any

import pytest

from alerting.base import DeliveryError, NotificationKind, SinkContext
from alerting.email import EmailSink, build_message, subject
from monitor.config import ConfigError, load_config
from monitor.model import Severity
from tests.alerting_helpers import incident, notification
from tests.fakes import START
from tests.net import free_port
from tests.sinks.conftest import SMTP_PASSWORD, SMTP_USER, StartSmtp

UNTRUSTED = "<script>alert('owned')</script> <!channel> & <b>bold</b>"
CONFIG = EmailSink.Config.model_validate(
    {"type": "email", "smtp_host": "localhost", "from": "monitor@example.com", "to": ["a@example.com"]}
)


def email_sink(context: SinkContext, port: int, **keys: Any) -> EmailSink:
    raw = {"type": "email", "smtp_host": "127.0.0.1", "smtp_port": port, "from": "Health Monitor <monitor@example.com>"}
    raw["to"] = ["oncall@example.com", "lead@example.com"]
    config = EmailSink.Config.model_validate(raw | keys)
    return EmailSink("email-leads", config, context)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (NotificationKind.INITIAL, "[P1] System Issue Detected: api"),
        (NotificationKind.SEVERITY_RAISED, "[P1] System Issue Update: api"),
        (NotificationKind.STATUS_UPDATE, "[P1] System Issue Update: api"),
        (NotificationKind.ESCALATION, "[P1] System Issue Escalated: api"),
        (NotificationKind.ACKNOWLEDGED, "[P1] System Issue Acknowledged: api"),
        (NotificationKind.RESPONSE_BREACHED, "[P1] Response Time Breached: api"),
        (NotificationKind.RESOLUTION, "[RESOLVED] System Issue Resolved: api"),
    ],
)
def test_every_message_has_its_subject_and_both_parts(kind: NotificationKind, expected: str) -> None:
    message = notification(kind, paged_at=START, acknowledged_by="alice").model_copy(
        update={"previous_severity": Severity.P3, "escalation_level": 2, "escalation_role": "Team Lead"}
    )
    assert subject(message) == expected
    built = build_message(message, CONFIG, START)
    assert built["Subject"] == expected
    assert built.get_body(preferencelist=("plain",)) is not None
    assert built.get_body(preferencelist=("html",)) is not None


def test_a_grouped_message_names_the_most_urgent_severity_and_the_checks() -> None:
    group = (incident(Severity.P3, check="db"), incident(Severity.P2, check="xero"), incident(Severity.P3, id=9))
    grouped = notification().model_copy(update={"kind": NotificationKind.GROUPED, "group": group})
    assert subject(grouped) == "[P2] 3 System Issues Detected: db, xero, api"
    assert "References" not in build_message(grouped, CONFIG, START)


def test_untrusted_text_is_escaped_in_the_html_part_and_verbatim_in_the_text_part() -> None:
    message = build_message(notification(evidence=[UNTRUSTED]), CONFIG, START)
    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "<script>" not in html and "<!channel>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt; &lt;!channel&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert UNTRUSTED in text


async def test_plain_smtp_delivers_both_parts_to_every_recipient(smtp_server: StartSmtp, sink_context) -> None:
    server = smtp_server("none")
    await email_sink(sink_context, server.port).send(notification())
    (mail,) = server.mailbox.delivered
    assert mail.sender == "monitor@example.com"
    assert mail.recipients == ["oncall@example.com", "lead@example.com"]
    assert mail.message["Subject"] == "[P1] System Issue Detected: api"
    assert mail.message["From"] == "Health Monitor <monitor@example.com>"
    assert mail.message["X-Health-Monitor-Notification"] == "7:initial"
    assert mail.message["Message-ID"].endswith("@example.com>")
    assert mail.part("text/plain").startswith("🚨 INCIDENT DETECTED 🚨\nSeverity: P1\nService: api\n")
    html = mail.part("text/html")
    assert "<h2" in html and "🚨 INCIDENT DETECTED 🚨" in html
    assert "&lt;!channel&gt;" in html and "<!channel>" not in html
    assert mail.login is None


async def test_messages_about_one_incident_thread_together(smtp_server: StartSmtp, sink_context) -> None:
    server = smtp_server("none")
    sink = email_sink(sink_context, server.port)
    await sink.send(notification())
    await sink.send(notification(NotificationKind.RESOLUTION))
    first, resolved = server.mailbox.delivered
    assert resolved.message["Subject"] == "[RESOLVED] System Issue Resolved: api"
    assert resolved.part("text/plain").startswith("✅ INCIDENT RESOLVED\n")
    assert first.message["Message-ID"] != resolved.message["Message-ID"]
    assert first.message["References"] == resolved.message["References"]


async def test_starttls_with_a_private_ca_and_login_from_the_environment(
    smtp_server: StartSmtp, sink_context, ca_file: Path, monkeypatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    server = smtp_server("starttls", auth=True)
    sink = email_sink(
        sink_context,
        server.port,
        security="starttls",
        ca_file=str(ca_file),
        username=SMTP_USER,
        password_env="TEST_SMTP_PASSWORD",
    )
    await sink.send(notification())
    (mail,) = server.mailbox.delivered
    assert mail.login == SMTP_USER
    assert mail.message["Subject"] == "[P1] System Issue Detected: api"


async def test_implicit_tls(smtp_server: StartSmtp, sink_context, ca_file: Path) -> None:
    server = smtp_server("tls")
    await email_sink(sink_context, server.port, security="tls", ca_file=str(ca_file)).send(notification())
    (mail,) = server.mailbox.delivered
    assert mail.recipients == ["oncall@example.com", "lead@example.com"]


async def test_a_certificate_from_an_unknown_ca_is_refused(smtp_server: StartSmtp, sink_context) -> None:
    server = smtp_server("starttls")
    with pytest.raises(DeliveryError) as failure:
        await email_sink(sink_context, server.port, security="starttls").send(notification())
    assert "certificate" in str(failure.value).lower()
    assert server.mailbox.delivered == []


async def test_a_wrong_password_is_permanent_and_never_shown(
    smtp_server: StartSmtp, sink_context, ca_file: Path, monkeypatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong-secret-value")
    server = smtp_server("starttls", auth=True)
    sink = email_sink(
        sink_context,
        server.port,
        security="starttls",
        ca_file=str(ca_file),
        username=SMTP_USER,
        password_env="TEST_SMTP_PASSWORD",
    )
    with pytest.raises(DeliveryError) as failure:
        await sink.send(notification())
    assert not failure.value.retryable
    assert "535" in str(failure.value)
    assert "wrong-secret-value" not in str(failure.value)


async def test_permanent_and_temporary_rejections(smtp_server: StartSmtp, sink_context) -> None:
    server = smtp_server("none")
    sink = email_sink(sink_context, server.port)
    server.mailbox.refuse = {"oncall@example.com": "550 5.1.1 no such user", "lead@example.com": "550 5.1.1 gone"}
    with pytest.raises(DeliveryError) as refused:
        await sink.send(notification())
    assert not refused.value.retryable
    assert "oncall@example.com: 550" in str(refused.value)

    server.mailbox.refuse = {}
    server.mailbox.data_reply = "451 4.3.0 try again later"
    with pytest.raises(DeliveryError) as deferred:
        await sink.send(notification())
    assert deferred.value.retryable
    assert server.mailbox.delivered == []


async def test_partly_refused_recipients_are_not_retried(smtp_server: StartSmtp, sink_context) -> None:
    server = smtp_server("none")
    server.mailbox.refuse = {"lead@example.com": "550 5.1.1 gone"}
    with pytest.raises(DeliveryError) as failure:
        await email_sink(sink_context, server.port).send(notification())
    assert not failure.value.retryable
    assert "lead@example.com: 550" in str(failure.value)
    assert [mail.recipients for mail in server.mailbox.delivered] == [["oncall@example.com"]]


async def test_an_unreachable_server_is_worth_a_retry(sink_context) -> None:
    with pytest.raises(DeliveryError) as failure:
        await email_sink(sink_context, free_port()).send(notification())
    assert failure.value.retryable


def test_config_takes_from_and_rejects_mistakes(write_config, clean_env, monkeypatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
    good = """
[sinks.email-leads]
type = "email"
smtp_host = "smtp.example.com"
security = "starttls"
username = "monitor"
password_env = "SMTP_PASSWORD"
from = "monitor@example.com"
to = ["leads@example.com", "cto@example.com"]
min_severity = "P2"
"""
    sink = load_config(write_config(good)).sinks["email-leads"]
    assert sink.sender == "monitor@example.com" and sink.smtp_port == 25

    bad = """
[sinks.email-leads]
type = "email"
smtp_host = "smtp.example.com"
username = "monitor"
sender_adress = "x"
to = ["not-an-address"]
"""
    with pytest.raises(ConfigError) as invalid:
        load_config(write_config(bad))
    problems = "\n".join(invalid.value.problems)
    assert "sinks.email-leads.from: required key missing" in problems
    assert "sinks.email-leads.sender_adress: unknown key" in problems
    assert "'not-an-address' is not an email address" in problems


async def test_starttls_required_but_not_offered_is_refused_not_sent_in_the_clear(
    smtp_server: StartSmtp, sink_context
) -> None:
    server = smtp_server("none")
    with pytest.raises(DeliveryError) as failure:
        await email_sink(sink_context, server.port, security="starttls").send(notification())
    assert not failure.value.retryable
    assert "STARTTLS" in str(failure.value)
    assert server.mailbox.delivered == []
