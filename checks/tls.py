"""`type = "tls"`: when does the certificate expire, does it name the host, is it trusted?

Trust comes from OpenSSL's verification against the system store (which honours
SSL_CERT_FILE) or `ca_file`. Expiry and hostname are read from the certificate itself,
so each problem is its own finding even when OpenSSL stops at the first one. A
certificate that fails verification is fetched again over an unverified handshake."""

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from pydantic import Field, field_validator, model_validator

from checks.base import Check, CheckConfig, Finding, PluginGauge, Severity, Status, format_duration

CERT_EXPIRY = PluginGauge(
    "health_monitor_tls_cert_expiry_seconds", "Seconds until the certificate expires (negative once expired)."
)

_DAY = 86400.0
_DATE_ERRORS = {9, 10}
"""OpenSSL's verify codes for "not yet valid" and "expired": errors in some certificate's dates."""


class TlsCheckConfig(CheckConfig):
    host: str = Field(description="Host name to connect to and expect in the certificate.")
    port: int = Field(default=443, ge=1, le=65535)
    ca_file: Path | None = Field(
        default=None, description="PEM file of a private CA to trust instead of the system store."
    )
    warning_days: float = Field(default=14, gt=0, description="Expiring within this many days: WARNING, P3.")
    critical_days: float = Field(default=3, gt=0, description="Expiring within this many days: CRITICAL, P2.")
    severity: Severity = Field(default=Severity.P2, description="Severity when no TLS connection can be made.")

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> Self:
        if self.critical_days >= self.warning_days:
            raise ValueError("critical_days must be smaller than warning_days")
        return self


@dataclass(frozen=True, slots=True)
class Handshake:
    certificate: x509.Certificate
    verify_error: ssl.SSLCertVerificationError | None
    """None when the chain verified against the trusted CAs."""


class TlsUnreachable(Exception):
    """No TLS session could be set up at all."""


class TlsCheck(Check[TlsCheckConfig]):
    type_name = "tls"
    Config = TlsCheckConfig
    timeout_code = "unreachable"
    gauges = (CERT_EXPIRY,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.target = f"{self.config.host}:{self.config.port}"
        cafile = str(self.config.ca_file) if self.config.ca_file else None
        self._verifying = ssl.create_default_context(cafile=cafile)
        # Hostname is judged from the certificate (below), so that a mismatch and an
        # untrusted chain are both reported when both are wrong.
        self._verifying.check_hostname = False
        self._unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._unverified.check_hostname = False
        self._unverified.verify_mode = ssl.CERT_NONE

    async def run(self) -> list[Finding]:
        try:
            handshake = await self._handshake()
        except TlsUnreachable as exc:
            return [self._unreachable(str(exc))]
        return [
            self._expiry(handshake),
            self._hostname(handshake.certificate),
            self._trust(handshake),
        ]

    def timeout_finding(self, seconds: float) -> Finding:
        return self._unreachable(f"no TLS handshake within {format_duration(seconds)} (timeout)")

    async def _handshake(self) -> Handshake:
        try:
            return Handshake(await self._certificate(self._verifying), None)
        except ssl.SSLCertVerificationError as exc:
            verify_error = exc
        return Handshake(await self._certificate(self._unverified), verify_error)

    async def _certificate(self, context: ssl.SSLContext) -> x509.Certificate:
        try:
            _, writer = await asyncio.open_connection(
                self.config.host, self.config.port, ssl=context, server_hostname=self.config.host
            )
        except ssl.SSLCertVerificationError:
            raise
        except ssl.SSLError as exc:
            raise TlsUnreachable(f"TLS handshake with {self.target} failed: {exc.reason or exc}") from None
        except OSError as exc:
            raise TlsUnreachable(f"cannot connect to {self.target}: {_os_reason(exc)}") from None
        try:
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            # Only the certificate was wanted: no need to wait for a polite TLS shutdown.
            writer.transport.abort()
        if der is None:
            raise TlsUnreachable(f"{self.target} presented no certificate")
        return x509.load_der_x509_certificate(der)

    def _expiry(self, handshake: Handshake) -> Finding:
        certificate = handshake.certificate
        now = self.context.clock.now()
        expires = certificate.not_valid_after_utc
        remaining = (expires - now).total_seconds()
        self.context.metrics.set_gauge(self.name, CERT_EXPIRY, remaining)
        values = {"expiry_seconds": remaining}
        when = f"{expires:%Y-%m-%d %H:%M}Z"
        if remaining <= 0:
            summary = f"certificate of {self.target} expired {format_duration(-remaining)} ago ({when})"
            return Finding("cert_expiry", Status.CRITICAL, summary, Severity.P1, values=values)
        if certificate.not_valid_before_utc > now:
            starts = f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M}Z"
            summary = f"certificate of {self.target} is not valid before {starts}"
            return Finding("cert_expiry", Status.CRITICAL, summary, Severity.P2, values=values)
        summary = f"certificate of {self.target} expires in {format_duration(remaining)} ({when})"
        if remaining <= self.config.critical_days * _DAY:
            return Finding("cert_expiry", Status.CRITICAL, summary, Severity.P2, values=values)
        if remaining <= self.config.warning_days * _DAY:
            return Finding("cert_expiry", Status.WARNING, summary, Severity.P3, values=values)
        return Finding("cert_expiry", Status.OK, summary, values=values)

    def _hostname(self, certificate: x509.Certificate) -> Finding:
        names = _subject_alt_names(certificate)
        if _matches(self.config.host, names):
            return Finding("hostname_mismatch", Status.OK, f"certificate of {self.target} names {self.config.host}")
        shown = ", ".join(names) or "no DNS or IP names"
        return Finding(
            code="hostname_mismatch",
            status=Status.CRITICAL,
            summary=f"certificate of {self.target} is not valid for {self.config.host}: it names {shown}",
            severity=Severity.P2,
            evidence=(f"subject: {certificate.subject.rfc4514_string()}",),
        )

    def _trust(self, handshake: Handshake) -> Finding:
        store = f"CA file {self.config.ca_file}" if self.config.ca_file else "the system trust store"
        error = handshake.verify_error
        if error is None:
            return Finding("untrusted", Status.OK, f"certificate chain of {self.target} is trusted by {store}")
        if error.verify_code in _DATE_ERRORS and self._out_of_date(handshake.certificate):
            # OpenSSL checks dates after trust: the chain is trusted, and cert_expiry reports the dates.
            summary = f"certificate chain of {self.target} leads to a CA in {store}; only its dates fail"
            return Finding("untrusted", Status.OK, summary)
        return Finding(
            code="untrusted",
            status=Status.CRITICAL,
            summary=f"certificate of {self.target} is not trusted by {store}: {error.verify_message}",
            severity=Severity.P2,
            evidence=(f"OpenSSL verify error {error.verify_code}: {error.verify_message}",),
        )

    def _out_of_date(self, certificate: x509.Certificate) -> bool:
        now = self.context.clock.now()
        return not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc

    def _unreachable(self, reason: str) -> Finding:
        # Without a handshake no certificate was seen: its findings neither confirm nor clear.
        return Finding(
            code="unreachable", status=Status.CRITICAL, summary=reason, severity=self.config.severity, blocks=("*",)
        )


def _subject_alt_names(certificate: x509.Certificate) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return []
    names: x509.SubjectAlternativeName = extension.value
    dns = names.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    return [*dns, *ips]


def _matches(host: str, names: list[str]) -> bool:
    """RFC 6125 matching as browsers do it: SAN entries only, a wildcard only as the whole
    left-most label, matching exactly one label."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        return any(name == str(address) for name in names)
    wanted = host.rstrip(".").lower().split(".")
    for name in names:
        labels = name.rstrip(".").lower().split(".")
        if len(labels) != len(wanted):
            continue
        if labels == wanted or (labels[0] == "*" and len(labels) > 2 and labels[1:] == wanted[1:]):
            return True
    return False


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or str(exc) or type(exc).__name__
