"""monitor.toml keys of a heartbeat check: when a run is expected, how much slack it gets."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import Field, field_validator, model_validator

from checks.base import CheckConfig, Duration, SecretEnv, Severity


class HeartbeatConfig(CheckConfig):
    accepts_pings = True

    period: Duration | None = Field(default=None, gt=0, description="A run is expected at least this often.")
    schedule: str | None = Field(
        default=None, description='Cron expression of the runs, e.g. "0 3 * * *" (instead of period).'
    )
    tz: str = Field(default="UTC", description="Time zone of `schedule`, e.g. Europe/London.")
    grace: Duration = Field(default=3600.0, ge=0, description="Slack after the expected time before a run is missed.")
    max_runtime: Duration | None = Field(
        default=None, gt=0, description="A run that pinged /start and has not ended within this is late."
    )
    token_env: SecretEnv | None = Field(default=None, description="Variable holding the token pings must carry.")
    severity: Severity = Field(default=Severity.P2, description="Severity of a missed, failed or late run.")
    failure_threshold: int = Field(default=1, ge=1, description="A missed or failed run opens an incident at once.")
    success_threshold: int = Field(default=1, ge=1, description="The next good run resolves the incident.")

    def ping_token(self) -> SecretEnv | None:
        return self.token_env

    @field_validator("tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (expected an IANA name such as Europe/London)") from None
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronSim(value, datetime(2000, 1, 1, tzinfo=UTC))
            except CronSimError as exc:
                raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_expectation(self) -> "HeartbeatConfig":
        if (self.period is None) == (self.schedule is None):
            raise ValueError("a heartbeat check needs exactly one of period or schedule")
        return self

