"""The `[context]` tables of monitor.toml.

`[context.railway]` and `[context.sentry]` each take either one entry's keys directly (the
single-service form) or named sub-tables, `[context.railway.web]`, `[context.railway.worker]`,
when checks watch several services. The single form is the entry named `default`."""

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.durations import Duration
from monitor.secrets import SecretEnv

RAILWAY_API_URL = "https://backboard.railway.com/graphql/v2"
RAILWAY_STATUS_URL = "https://api.railwaystatus.com/status"
SENTRY_API_URL = "https://sentry.io/api/0/"
SINGLE_ENTRY = "default"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    checks: list[str] | None = Field(
        default=None, description="Checks whose incidents get this context; unset for every check."
    )

    def covers(self, check: str) -> bool:
        return self.checks is None or check in self.checks


class RailwayEntry(_Entry):
    token_env: SecretEnv | None = Field(default=None, description="Account or workspace token (Bearer).")
    project_token_env: SecretEnv | None = Field(default=None, description="Project token (Project-Access-Token).")
    project_id: str
    environment_id: str
    service_id: str = Field(description="The service the covered checks watch.")
    api_url: str = RAILWAY_API_URL
    status_url: str = Field(default=RAILWAY_STATUS_URL, description='Railway\'s status page; "" turns it off.')

    @model_validator(mode="after")
    def _one_token(self) -> "RailwayEntry":
        if (self.token_env is None) == (self.project_token_env is None):
            raise ValueError("give exactly one of token_env and project_token_env")
        return self

    def auth_headers(self) -> dict[str, str]:
        if self.project_token_env is not None:
            return {"Project-Access-Token": self.project_token_env.value()}
        assert self.token_env is not None
        return {"Authorization": f"Bearer {self.token_env.value()}"}


class SentryEntry(_Entry):
    token_env: SecretEnv = Field(description="Auth token with event:read (and project:read for a slug).")
    organization: str
    project: str | None = Field(default=None, description="Project slug (looked up once), or project_id.")
    project_id: int | None = None
    api_url: str = SENTRY_API_URL

    @model_validator(mode="after")
    def _one_project(self) -> "SentryEntry":
        if (self.project is None) == (self.project_id is None):
            raise ValueError("give exactly one of project and project_id")
        return self

    @field_validator("api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"


EntryT = TypeVar("EntryT", bound="_Entry")


def _named_entries(value: Any) -> Any:
    """The single-entry form (a table of keys) as {"default": entry}; named sub-tables as they are."""
    if not isinstance(value, dict) or not value:
        return value
    tables = [key for key, item in value.items() if isinstance(item, dict)]
    if not tables:
        return {SINGLE_ENTRY: value}
    if len(tables) != len(value):
        raise ValueError("give either one entry's keys or [NAME] sub-tables, not both")
    return value


class ContextSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: Duration = Field(default=5.0, gt=0, description="The page waits at most this long for the context.")
    suspect_window: Duration = Field(
        default=1800.0, gt=0, description="A deploy this recent before detection makes a P1/P2 suggest a rollback."
    )
    webhook_secret_env: SecretEnv | None = Field(
        default=None, description="Shared secret of POST /api/hooks/railway (?secret= or X-Webhook-Secret)."
    )
    railway: dict[str, RailwayEntry] = Field(default_factory=dict)
    sentry: dict[str, SentryEntry] = Field(default_factory=dict)

    @field_validator("railway", "sentry", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        return _named_entries(value)

    def railway_for(self, check: str) -> tuple[str, RailwayEntry] | None:
        return _entry_for(self.railway, check)

    def sentry_for(self, check: str) -> tuple[str, SentryEntry] | None:
        return _entry_for(self.sentry, check)


def _entry_for(entries: dict[str, EntryT], check: str) -> tuple[str, EntryT] | None:
    """The entry naming the check, else the first that covers every check."""
    named = next(((n, e) for n, e in entries.items() if e.checks is not None and check in e.checks), None)
    return named or next(((n, e) for n, e in entries.items() if e.checks is None), None)


def context_problems(context: ContextSection, checks: set[str]) -> list[str]:
    """Entries naming checks that do not exist."""
    problems = []
    for kind, entries in (("railway", context.railway), ("sentry", context.sentry)):
        for name, entry in entries.items():
            where = f"context.{kind}" if name == SINGLE_ENTRY else f"context.{kind}.{name}"
            problems += [f"{where}.checks: no check named {c!r}" for c in entry.checks or () if c not in checks]
    return problems
