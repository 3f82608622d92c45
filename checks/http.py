"""`type = "http"`: is the endpoint up, answering what it should, and as fast as usual?"""

import json
from typing import Any, Literal

from pydantic import Field, field_validator

from checks.base import (
    Check,
    CheckConfig,
    Duration,
    Finding,
    SecretEnv,
    Severity,
    Status,
    format_duration,
    register_header,
    scrub,
)
from checks.latency import LatencyBaseline
from checks.probe import (
    MAX_BODY_BYTES,
    PROBE_ERRORS,
    ProbeFailure,
    body_evidence,
    probe_failure,
    read_capped,
    require_http_url,
)

JsonScalar = str | int | float | bool | None


class HttpCheckConfig(CheckConfig):
    url: str = Field(description="The endpoint to probe (http or https).")
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    headers_env: dict[str, SecretEnv] = Field(
        default_factory=dict, description="Request headers whose values come from environment variables."
    )
    body: str | None = Field(default=None, description="Request body sent as is.")
    expect_status: list[int] | None = Field(default=None, description="Accepted status codes; default any 2xx.")
    body_contains: str | None = Field(default=None, description="Text the response body must contain.")
    json_fields: dict[str, JsonScalar] = Field(
        default_factory=dict, description='Dotted JSON paths and the value each must equal, e.g. {"status" = "ok"}.'
    )
    follow_redirects: bool = True
    tls_verify: bool = True
    severity: Severity = Field(default=Severity.P1, description="Severity when the endpoint is down.")
    slow: Duration | None = Field(default=None, description="Slower than this: WARNING, P3.")
    degradation_percent: float | None = Field(
        default=None, gt=0, description="Latency this far above its learnt baseline: P2."
    )
    degradation_floor: Duration = Field(
        default=0.05,
        description="Latency must also be this much above the baseline, so jitter on fast endpoints is not paged.",
    )
    baseline_min_samples: int = Field(default=10, ge=1, description="Good runs needed before judging degradation.")
    baseline_window: int = Field(default=50, ge=1, description="Good runs the baseline's median is taken over.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return require_http_url(value)

    @field_validator("expect_status")
    @classmethod
    def _status_codes(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(not 100 <= code <= 599 for code in value)):
            raise ValueError("expected a non-empty list of HTTP status codes (100-599)")
        return value


class HttpCheck(Check[HttpCheckConfig]):
    type_name = "http"
    Config = HttpCheckConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.target = scrub(self.config.url)
        for name, value in self.config.headers.items():
            register_header(name, value)
        self.baseline = LatencyBaseline(self.config.baseline_window, self.config.baseline_min_samples)

    async def run(self) -> list[Finding]:
        clock = self.context.clock
        started = clock.monotonic()
        try:
            status, body = await self._request()
            self._verify(status, body)
        except ProbeFailure as failure:
            return [self._down(failure)]
        latency = clock.monotonic() - started
        shown = format_duration(latency)
        up = Finding(code="down", status=Status.OK, summary=f"HTTP {status} in {shown}",
                     values={"latency_seconds": latency})
        if self.config.slow is None and self.config.degradation_percent is None:
            return [up]
        return [up, *self._judge_latency(latency, shown)]

    def timeout_finding(self, seconds: float) -> Finding:
        return self._down(ProbeFailure("timeout", f"no complete answer within {format_duration(seconds)}"))

    async def _request(self) -> tuple[int, bytes]:
        headers = None
        if self.config.headers or self.config.headers_env:
            headers = dict(self.config.headers)
            headers.update({name: secret.value() for name, secret in self.config.headers_env.items()})
        try:
            async with self.context.http.request(
                self.config.method,
                self.config.url,
                headers=headers,
                data=self.config.body,
                allow_redirects=self.config.follow_redirects,
                ssl=None if self.config.tls_verify else False,
            ) as response:
                return response.status, await read_capped(response)
        except PROBE_ERRORS as exc:
            raise probe_failure(exc, self.config.url) from None

    def _verify(self, status: int, body: bytes) -> None:
        accepted = self.config.expect_status
        if (accepted is None and not 200 <= status <= 299) or (accepted is not None and status not in accepted):
            wanted = ", ".join(map(str, accepted)) if accepted else "2xx"
            raise ProbeFailure("status", f"HTTP {status}, expected {wanted}", body_evidence(body))
        if not self.config.body_contains and not self.config.json_fields:
            return  # nothing to read in the body: not decoded
        if len(body) > MAX_BODY_BYTES:
            raise ProbeFailure("body_mismatch", f"response body exceeds {MAX_BODY_BYTES} bytes; not checked")
        text = body.decode("utf-8", errors="replace")
        if self.config.body_contains is not None and self.config.body_contains not in text:
            raise ProbeFailure(
                "body_mismatch", f"response body does not contain {self.config.body_contains!r}", body_evidence(body)
            )
        if self.config.json_fields:
            self._verify_json(text)

    def _verify_json(self, text: str) -> None:
        try:
            document = json.loads(text)
        except ValueError:
            raise ProbeFailure(
                "body_mismatch", "response body is not valid JSON", body_evidence(text.encode())
            ) from None
        for path, expected in self.config.json_fields.items():
            found, actual = _json_lookup(document, path)
            if not found:
                raise ProbeFailure("body_mismatch", f"JSON field {path} is missing", body_evidence(text.encode()))
            if actual != expected:
                raise ProbeFailure(
                    "body_mismatch",
                    f"JSON field {path} is {json.dumps(actual)}, expected {json.dumps(expected)}",
                    body_evidence(text.encode()),
                )

    def _judge_latency(self, latency: float, shown: str | None = None) -> list[Finding]:
        findings = []
        shown = shown or format_duration(latency)
        if self.config.slow is not None and latency > self.config.slow:
            findings.append(
                Finding(
                    code="slow",
                    status=Status.WARNING,
                    summary=f"{self.target} answered in {shown}, slower than {format_duration(self.config.slow)}",
                    severity=Severity.P3,
                    values={"latency_seconds": latency},
                )
            )
        if self.config.degradation_percent is not None:
            excess = self.baseline.excess_percent(latency)
            median = self.baseline.median() or 0.0
            above_floor = latency - median >= self.config.degradation_floor
            if excess is not None and excess > self.config.degradation_percent and above_floor:
                baseline = format_duration(self.baseline.median() or 0.0)
                findings.append(
                    Finding(
                        code="degraded",
                        status=Status.WARNING,
                        summary=f"{self.target} answered in {shown}, {excess:.0f}% above its baseline of {baseline}",
                        severity=Severity.P2,
                        values={"latency_seconds": latency, "excess_percent": excess},
                    )
                )
        if not findings and self.config.degradation_percent is not None:
            self.baseline.learn(latency)
        return findings

    def _down(self, failure: ProbeFailure) -> Finding:
        return Finding(
            code="down",
            status=Status.CRITICAL,
            summary=f"{self.config.method} {self.target} failed: {failure.summary}",
            severity=self.config.severity,
            evidence=(f"failure: {failure.kind}", *failure.evidence),
            blocks=("slow", "degraded"),
        )


def _json_lookup(document: Any, path: str) -> tuple[bool, Any]:
    current = document
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return True, current
