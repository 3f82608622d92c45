"""The integration check: probe the vendor's API hosts, test our credentials when a token
is configured, and read the vendor's status page to name the upstream incident."""

import asyncio
from dataclasses import dataclass
from typing import Any

from checks.base import Check, Finding, Severity, Status, format_duration, scrub
from checks.integration.config import IntegrationCheckConfig
from checks.integration.providers import PROVIDERS, Target, probe_targets, status_api_url
from checks.integration.statuspage import StatusPageReader, StatusReading, VendorStatus
from checks.probe import PROBE_ERRORS, ProbeFailure, body_evidence, probe_failure, read_capped

_DEFAULT_TIMEOUT = 10.0
_REQUEST_SHARE = 0.4
"""Each request may use this share of the check's timeout: the probes and then the status
page fit in the run, with room to spare before the core's timeout ends it."""
_FAILING_REFRESH = 60.0
"""While the probe keeps failing, the status page is re-read at most this often, so the
finding picks up the vendor's incident as soon as it is posted."""
_REJECTED = {401: "invalid or expired", 403: "not allowed to use this endpoint"}


@dataclass(frozen=True, slots=True)
class Answered:
    """The host answered below 500: it is reachable, whatever the status says about us."""

    target: Target
    status: int
    latency: float
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Failed:
    target: Target
    failure: ProbeFailure


ProbeResult = Answered | Failed


class IntegrationCheck(Check[IntegrationCheckConfig]):
    type_name = "integration"
    Config = IntegrationCheckConfig
    timeout_code = "unreachable"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.provider = PROVIDERS[self.config.provider]
        self.vendor = self.config.vendor or self.provider.vendor or self.name
        self.targets = probe_targets(self.config)
        self.auth_header = self.config.auth_header if self.config.provider == "custom" else self.provider.auth_header
        status_url = status_api_url(self.config)
        self.status_page = StatusPageReader(status_url, self.config.status_components) if status_url else None
        self._was_failing = False

    async def run(self) -> list[Finding]:
        budget = (self.config.timeout or _DEFAULT_TIMEOUT) * _REQUEST_SHARE
        results = await asyncio.gather(*(self._probe(target, budget) for target in self.targets))
        failing = any(isinstance(result, Failed) for result in results)
        reading = await self._read_status_page(failing, budget)
        self._was_failing = failing
        findings = [self._reachability(results, reading)]
        authenticated = next((r for r in results if isinstance(r, Answered) and r.target.authenticated), None)
        if authenticated is not None:
            findings.append(self._credentials(authenticated))
        if reading is not None and reading.status is not None:
            findings.append(self._upstream(reading.status, failing))
        return findings

    def timeout_finding(self, seconds: float) -> Finding:
        problem = f"no result within {format_duration(seconds)} (timeout)"
        return self._unreachable_finding(problem, (), None, blocks=("*",))

    async def _probe(self, target: Target, budget: float) -> ProbeResult:
        clock = self.context.clock
        started = clock.monotonic()
        try:
            async with asyncio.timeout(budget):
                async with self.context.http.get(
                    target.url, headers=self._headers(target), allow_redirects=False
                ) as response:
                    status = response.status
                    body = await read_capped(response) if status >= 400 else b""
        except TimeoutError:
            return Failed(target, ProbeFailure("timeout", f"no answer within {format_duration(budget)}"))
        except PROBE_ERRORS as exc:
            return Failed(target, probe_failure(exc, target.url))
        evidence = body_evidence(body)
        if status >= 500:
            return Failed(target, ProbeFailure("status", f"HTTP {status}", evidence))
        return Answered(target, status, clock.monotonic() - started, evidence)

    def _headers(self, target: Target) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self.config.token_env
        if target.authenticated and token is not None:
            bearer = self.auth_header.lower() == "authorization"
            headers[self.auth_header] = f"Bearer {token.value()}" if bearer else token.value()
        return headers

    async def _read_status_page(self, failing: bool, budget: float) -> StatusReading | None:
        if self.status_page is None:
            return None
        interval = self.config.status_page_interval
        if not failing:
            max_age = interval
        elif not self._was_failing:
            max_age = 0.0  # the first failing run reads it now, to name the vendor's incident
        else:
            max_age = min(interval, _FAILING_REFRESH)
        return await self.status_page.read(self.context.http, self.context.clock.monotonic(), max_age, budget)

    def _reachability(self, results: list[ProbeResult], reading: StatusReading | None) -> Finding:
        failed = [result for result in results if isinstance(result, Failed)]
        if failed:
            problem = f"{_request(failed[0].target)} failed: {failed[0].failure.summary}"
            if len(failed) > 1:
                problem += f" (and {len(failed) - 1} more)"
            evidence = tuple(line for result in failed for line in _failure_evidence(result))
            blocks = _unjudged(failed, reading)
            return self._unreachable_finding(problem, evidence + self._vendor_evidence(reading), reading, blocks)
        answered = [result for result in results if isinstance(result, Answered)]
        return Finding(
            code="unreachable",
            status=Status.OK,
            summary=f"{self.vendor} API reachable: " + ", ".join(_answer(result) for result in answered),
            values={"latency_seconds": max(result.latency for result in answered)},
            evidence=self._status_page_problem(reading),
        )

    def _unreachable_finding(
        self, problem: str, evidence: tuple[str, ...], reading: StatusReading | None, blocks: tuple[str, ...] = ()
    ) -> Finding:
        impact = f", {self.provider.impact}" if self.provider.impact else ""
        summary = f"{self.vendor} API unreachable{impact}: {problem}"
        event = reading.status.headline if reading is not None and reading.status is not None else None
        if event is not None:
            summary = f"upstream {event.kind} at {self.vendor}: {event.name} ({event.link}); {summary}"
        return Finding(
            code="unreachable",
            status=Status.CRITICAL,
            summary=summary,
            severity=self.config.severity or self.provider.unreachable_severity,
            evidence=evidence,
            blocks=blocks,
        )

    def _credentials(self, result: Answered) -> Finding:
        answer = _answer(result)
        secret = str(self.config.token_env)
        if result.status in _REJECTED:
            return Finding(
                code="credentials_rejected",
                status=Status.CRITICAL,
                summary=(
                    f"{self.vendor} rejected our credentials ({secret}: {_REJECTED[result.status]}, {answer}); "
                    f"the integration fails although {self.vendor} is up"
                ),
                severity=Severity.P2,
                evidence=result.evidence,
            )
        verdict = "accepted" if 200 <= result.status <= 299 else "did not reject"
        return Finding(
            code="credentials_rejected",
            status=Status.OK,
            summary=f"{self.vendor} {verdict} our credentials ({secret}): {answer}",
        )

    def _upstream(self, report: VendorStatus, probe_failing: bool) -> Finding:
        """What the vendor reports. While our probe fails, `unreachable` carries the alarm
        and names the incident; this finding stays the vendor's view, at its own severity."""
        if not report.degraded:
            return Finding(
                code="upstream_degraded",
                status=Status.OK,
                summary=f"{self.vendor} status page: {report.description or 'no trouble reported'}",
                evidence=report.configuration_evidence(),
            )
        summary = f"{self.vendor} reports {report.trouble}"
        if not probe_failing:
            summary = f"non-critical integration issue: {summary}"
        if report.headline is not None:
            summary += f": {report.headline.name} ({report.headline.link})"
        return Finding(
            code="upstream_degraded",
            status=Status.WARNING,
            summary=summary,
            severity=Severity.P3,
            evidence=report.evidence(self.vendor),
        )

    def _vendor_evidence(self, reading: StatusReading | None) -> tuple[str, ...]:
        """What the vendor says, for a failing probe."""
        if reading is None:
            page = self.provider.status_page
            return (f"{self.vendor} status page (not read automatically): {page}",) if page else ()
        if reading.status is None:
            return self._status_page_problem(reading)
        known = reading.status.evidence(self.vendor)
        if reading.error is not None:
            known = (f"its last answer, {format_duration(reading.age)} old:", *known)
        return self._status_page_problem(reading) + known

    def _status_page_problem(self, reading: StatusReading | None) -> tuple[str, ...]:
        if reading is None or reading.error is None:
            return ()
        return (f"{self.vendor} status page unreadable: {reading.error}",)


def _request(target: Target) -> str:
    return f"GET {scrub(target.url)}"


def _answer(result: Answered) -> str:
    return f"HTTP {result.status} on {_request(result.target)}"


def _unjudged(failed: list[Failed], reading: StatusReading | None) -> tuple[str, ...]:
    """The codes this failing run could not judge, whose incidents must neither confirm nor clear."""
    codes = []
    if any(result.target.authenticated for result in failed):
        codes.append("credentials_rejected")
    if reading is not None and reading.status is None:
        codes.append("upstream_degraded")
    return tuple(codes)


def _failure_evidence(result: Failed) -> tuple[str, ...]:
    failure = result.failure
    return (f"{_request(result.target)}: {failure.kind}: {failure.summary}", *failure.evidence)
