"""monitor.toml, read through pydantic-settings (TOML, then `MONITOR_` environment
overrides with `__` between levels), validated in two phases: the envelope here, then
each check and sink against its plugin's own `Config`. Every mistake in the file becomes
one `ConfigError` line naming the key path, e.g. `checks.api.timeout: invalid duration`,
and all of them are reported in one run (both phases run even when the first fails).

Relative paths in the file (`state_path`, `incident_log`, `postmortem_dir`,
`templates_dir`, a file sink's `path`) are relative to the config file's directory, as
Prometheus does, so the operator commands find the daemon's state from anywhere."""

import difflib
import os
import re
import socket
import tomllib
import types
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from alerting.base import SinkConfig
from alerting.messages import template_problems
from checks.base import CheckConfig
from monitor import registry
from monitor.check_series import DEFAULT_DURATION_BUCKETS, DurationMetric
from monitor.cluster.lease import MIN_LEASE
from monitor.context.config import ContextSection, context_problems
from monitor.durations import Duration
from monitor.model import Severity
from monitor.scrub import register_secret
from monitor.secrets import SecretEnv, StoreSecretEnv, secrets_unresolved

DEFAULT_CONFIG_PATH = "monitor.toml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DSN_SCHEMES = ("postgresql://", "postgres://")


class ConfigError(Exception):
    """An invalid config; `problems` holds one line per mistake."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def default_node() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class MonitorSection(_Section):
    name: str = "health-monitor"
    interval: Duration = Field(default=60.0, gt=0, description="Default interval between runs of a check.")
    timeout: Duration = Field(default=10.0, gt=0, description="Default timeout of one check run.")
    concurrency: int = Field(default=200, ge=1, description="Check runs in flight at most.")
    state_path: str = Field(
        default="state/health-monitor.db",
        description="SQLite state store (the default; not with state_dsn_env or state_dsn).",
    )
    state_dsn_env: StoreSecretEnv | None = Field(
        default=None,
        description="Environment variable holding the postgresql:// URL of a PostgreSQL state store.",
    )
    state_dsn: SecretStr | None = Field(
        default=None,
        description="postgresql:// URL of a PostgreSQL state store; prefer state_dsn_env, which keeps "
        "the password out of the file.",
    )
    pgbouncer: bool = Field(
        default=False,
        description="The state store's DSN points at PgBouncer (transaction pooling): no prepared statement cache.",
    )
    incident_log: str = Field(default="incidents.log", description="One line per incident event.")
    postmortem_dir: str = Field(default="postmortems", description="Where post-mortem drafts of P1/P2 are written.")
    shutdown_grace: Duration = Field(default=5.0, description="Time in-flight work gets at shutdown.")
    retention: Duration = Field(
        default=30 * 86400.0,
        gt=0,
        description="Delivered, dead and shed notifications and resolved incidents older than this are pruned.",
    )
    connectivity_check: str | None = Field(
        default=None,
        description="A URL or host:port that should always answer; while it fails, findings are unknown.",
    )
    flap_low_threshold: float = Field(default=20.0, ge=0, le=100, description="Percent state change ending flapping.")
    flap_high_threshold: float = Field(default=30.0, ge=0, le=100, description="Percent state change starting it.")
    node: str | None = Field(
        default=None,
        description="This replica's name among replicas sharing a PostgreSQL state store (default: host name-pid).",
    )
    leader_lease: Duration = Field(
        default=15.0,
        description="How long a leader's lease lasts unrenewed; a dead leader is replaced within about this long.",
    )

    @field_validator("leader_lease")
    @classmethod
    def _lease_long_enough(cls, value: float) -> float:
        if value < MIN_LEASE:
            raise ValueError(
                f"must be at least {MIN_LEASE:g}s: a leader stops 1s before its lease can expire, and renews in between"
            )
        return value

    @field_validator("node")
    @classmethod
    def _node_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not 1 <= len(value) <= 128 or any(character.isspace() for character in value):
            raise ValueError(f"a node name is 1 to 128 characters without spaces, got {value!r}")
        return value

    @field_validator("state_dsn")
    @classmethod
    def _state_dsn_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            if not value.get_secret_value().startswith(_DSN_SCHEMES):
                raise ValueError("expected a postgresql:// URL")
            register_secret(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _one_state_store(self) -> "MonitorSection":
        dsn_keys = [key for key in ("state_dsn_env", "state_dsn") if getattr(self, key) is not None]
        if len(dsn_keys) == 2:
            raise ValueError("set one of state_dsn_env and state_dsn, not both")
        if dsn_keys and "state_path" in self.model_fields_set:
            raise ValueError(f"set one of state_path (SQLite) and {dsn_keys[0]} (PostgreSQL), not both")
        if self.state_dsn_env is not None and not self.state_dsn_env.value().startswith(_DSN_SCHEMES):
            raise ValueError(f"state_dsn_env: {self.state_dsn_env} does not hold a postgresql:// URL")
        return self

    @property
    def state_dsn_value(self) -> str | None:
        """The PostgreSQL state store's DSN (a secret), None for the SQLite file."""
        if self.state_dsn_env is not None:
            return self.state_dsn_env.value()
        return self.state_dsn.get_secret_value() if self.state_dsn is not None else None

    @property
    def node_name(self) -> str:
        """`node`, else this process's default (kept out of the schema: it differs per process)."""
        return self.node or default_node()


class ServerSection(_Section):
    listen: str = Field(default="127.0.0.1:8573", description="host:port of /metrics, /healthz and the API.")
    api_token_env: SecretEnv | None = Field(default=None, description="Bearer token required by POST endpoints.")
    duration_metric: DurationMetric = Field(
        default="histogram",
        description='health_monitor_check_duration_seconds as a "histogram", or a "gauge" of the last run.',
    )
    badges: bool = Field(default=False, description="Serve GET /badge/{check}.svg (status or uptime) for READMEs.")
    duration_buckets: list[float] = Field(
        default_factory=lambda: list(DEFAULT_DURATION_BUCKETS),
        min_length=1,
        description="Upper bounds (seconds) of the check duration histogram's buckets; each one a series per check.",
    )

    @field_validator("duration_buckets")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if any(bound <= 0 for bound in value) or sorted(set(value)) != value:
            raise ValueError("expected positive bounds in increasing order, e.g. [0.05, 0.25, 1, 5]")
        return value

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected host:port, got {value!r}")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class AlertingSection(_Section):
    templates_dir: str | None = Field(
        default=None, description="Directory of Jinja2 templates overriding the shipped ones, by file name."
    )
    storm_threshold: int = Field(
        default=5, ge=1, description="Initial alerts within storm_window before further ones are grouped."
    )
    storm_window: Duration = Field(default=60.0, gt=0, description="Window of the storm count and of a group.")


class SeverityPolicy(_Section):
    response: Duration = Field(description="Acknowledge within this, else a breach is recorded.")
    update_every: Duration = Field(description="Status-update cadence while open.")


DEFAULT_SEVERITY_POLICIES = {
    Severity.P1: SeverityPolicy(response=900, update_every=900),
    Severity.P2: SeverityPolicy(response=3600, update_every=3600),
    Severity.P3: SeverityPolicy(response=4 * 3600, update_every=4 * 3600),
    Severity.P4: SeverityPolicy(response=24 * 3600, update_every=24 * 3600),
}

class EscalationLevel(_Section):
    """One step of the playbook's escalation chain; `after` counts from the first page."""

    level: int = Field(ge=1)
    after: Duration
    role: str
    notify: list[str] = Field(default_factory=list, description="Sinks that hear of an incident from this level on.")
    severities: list[Severity] = Field(
        default_factory=lambda: list(Severity), description="Severities that climb to this level."
    )


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class MaintenanceWindow(_Section):
    """A planned window in which the named checks' findings are recorded but page no one.
    Either `start`/`end` (one-off) or `days`/`at`/`duration` (weekly, UTC)."""

    name: str
    checks: list[str] = Field(description='Checks covered; ["*"] for all.')
    reason: str = ""
    start: datetime | None = None
    end: datetime | None = None
    days: list[Weekday] = Field(default_factory=list)
    at: time | None = Field(default=None, description="Weekly start time, UTC, e.g. 02:00.")
    duration: Duration | None = None

    @model_validator(mode="after")
    def _one_form(self) -> "MaintenanceWindow":
        one_off = self.start is not None and self.end is not None
        weekly = bool(self.days) and self.at is not None and self.duration is not None
        if one_off == weekly:
            raise ValueError("give either start and end, or days, at and duration")
        if one_off and self.end <= self.start:  # type: ignore[operator]
            raise ValueError("end must be after start")
        return self

    def active_at(self, now: datetime) -> bool:
        if self.start is not None and self.end is not None:
            return _utc(self.start) <= now < _utc(self.end)
        assert self.at is not None and self.duration is not None
        for days_back in range(8):
            day = (now - timedelta(days=days_back)).date()
            if WEEKDAYS[day.weekday()] not in self.days:
                continue
            begins = datetime.combine(day, self.at, tzinfo=UTC)
            if begins <= now < begins + timedelta(seconds=self.duration):
                return True
        return False

    def covers(self, check: str) -> bool:
        return "*" in self.checks or check in self.checks


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_config_path: ContextVar[Path] = ContextVar("config_path")


class Settings(BaseSettings):
    """The envelope of monitor.toml. Checks and sinks stay raw here; phase two validates them."""

    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    monitor: MonitorSection = MonitorSection()
    server: ServerSection = ServerSection()
    alerting: AlertingSection = AlertingSection()
    severity: dict[Severity, SeverityPolicy] = Field(default_factory=dict)
    escalation: list[EscalationLevel] = Field(default_factory=list)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    context: ContextSection = ContextSection()
    checks: dict[str, Any] = Field(default_factory=dict)
    sinks: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_path.get())
        return (init_settings, env_settings, toml)


@dataclass(frozen=True)
class Config:
    """A fully validated configuration: the envelope plus each check's and sink's own model."""

    path: Path
    """The config file, as given; relative paths in it were resolved against its directory."""
    settings: Settings
    checks: dict[str, CheckConfig]
    sinks: dict[str, SinkConfig]

    @property
    def monitor(self) -> MonitorSection:
        return self.settings.monitor

    @property
    def server(self) -> ServerSection:
        return self.settings.server

    def severity_policy(self, severity: Severity) -> SeverityPolicy:
        return self.settings.severity.get(severity, DEFAULT_SEVERITY_POLICIES[severity])

    @property
    def escalation(self) -> list[EscalationLevel]:
        return sorted(self.settings.escalation, key=lambda level: (level.after, level.level))



def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """The config file: the --config flag, else $MONITOR_CONFIG, else ./monitor.toml."""
    return Path(path or os.environ.get("MONITOR_CONFIG") or DEFAULT_CONFIG_PATH)


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    resolve_secrets: bool = True,
) -> Config:
    """Load and validate; `overrides` (e.g. from CLI flags) win over the file and environment.
    With `resolve_secrets=False` (the operator commands) `*_env` variables need not be set."""
    config_path = resolve_path(path)
    if not config_path.is_file():
        raise ConfigError([f"{config_path}: config file not found"])
    with secrets_unresolved(not resolve_secrets):
        settings, problems, raw = _load_settings(config_path, overrides or {})
        checks = {
            name: model
            for name, table in raw.get("checks", {}).items()
            if (model := _validate_plugin(registry.CHECK_GROUP, "checks", name, table, problems)) is not None
        }
        sinks = {
            name: model
            for name, table in raw.get("sinks", {}).items()
            if (model := _validate_plugin(registry.SINK_GROUP, "sinks", name, table, problems)) is not None
        }
    if settings is not None:
        settings = _relative_to(config_path.parent, settings)
        sinks = {name: _sink_relative_to(config_path.parent, sink) for name, sink in sinks.items()}
        problems += _cross_reference_problems(settings, checks)
    if problems or settings is None:
        raise ConfigError(problems)
    defaults = settings.monitor
    checks = {
        name: check.model_copy(
            update={"interval": check.interval or defaults.interval, "timeout": check.timeout or defaults.timeout}
        )
        for name, check in checks.items()
    }
    # The raw tables are validated into `checks` and `sinks`; 10,000 of them kept twice cost 10 MB.
    settings = settings.model_copy(update={"checks": {}, "sinks": {}})
    return Config(path=config_path, settings=settings, checks=checks, sinks=sinks)


def _load_settings(path: Path, overrides: dict[str, Any]) -> tuple[Settings | None, list[str], dict[str, Any]]:
    """The envelope (None when invalid), its problems, and the raw check and sink tables."""
    token = _config_path.set(path)
    try:
        settings = Settings(**overrides)
        return settings, [], {"checks": settings.checks, "sinks": settings.sinks}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: TOML syntax error: {exc}"]) from None
    except ValidationError as exc:
        problems = describe_validation_error(exc, model=Settings)
        with path.open("rb") as file:
            raw = _merged(tomllib.load(file), EnvSettingsSource(Settings)())
        tables = {section: raw.get(section) for section in ("checks", "sinks")}
        return None, problems, {k: v for k, v in tables.items() if isinstance(v, dict)}
    finally:
        _config_path.reset(token)


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` laid over `base`, table by table (as the settings sources combine)."""
    merged = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        merged[key] = _merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


def _relative_to(base: Path, settings: Settings) -> Settings:
    monitor, alerting = settings.monitor, settings.alerting
    return settings.model_copy(
        update={
            "monitor": monitor.model_copy(
                update={
                    key: _against(base, getattr(monitor, key))
                    for key in ("state_path", "incident_log", "postmortem_dir")
                }
            ),
            "alerting": alerting.model_copy(
                update={"templates_dir": alerting.templates_dir and _against(base, alerting.templates_dir)}
            ),
        }
    )


def _sink_relative_to(base: Path, sink: SinkConfig) -> SinkConfig:
    """A sink's `path` key (the file sink's) names a file."""
    path = getattr(sink, "path", None)
    return sink.model_copy(update={"path": _against(base, path)}) if isinstance(path, str) else sink


def _against(base: Path, path: str) -> str:
    return str(base / Path(path).expanduser())


def _cross_reference_problems(settings: Settings, checks: dict[str, CheckConfig]) -> list[str]:
    """Names that must point at something that exists: sinks, checks, dependencies."""
    problems = []
    for index, level in enumerate(settings.escalation):
        problems += [
            f"escalation.{index}.notify: no sink named {name!r}" for name in level.notify if name not in settings.sinks
        ]
    levels = [level.level for level in settings.escalation]
    if len(set(levels)) != len(levels):
        problems.append("escalation: each level number may appear once")
    for index, window in enumerate(settings.maintenance):
        problems += [
            f"maintenance.{index}.checks: no check named {name!r}"
            for name in window.checks
            if name != "*" and name not in settings.checks
        ]
    for name, check in checks.items():
        for dependency in check.depends_on:
            if dependency == name or dependency not in settings.checks:
                problems.append(f"checks.{name}.depends_on: no other check named {dependency!r}")
    problems += context_problems(settings.context, set(settings.checks))
    if settings.alerting.templates_dir is not None:
        problems += template_problems(settings.alerting.templates_dir)
    monitor = settings.monitor
    if monitor.flap_low_threshold > monitor.flap_high_threshold:
        problems.append("monitor.flap_low_threshold: must not exceed flap_high_threshold")
    return problems


def _validate_plugin(group: str, section: str, name: str, raw: Any, problems: list[str]) -> Any:
    where = f"{section}.{name}"
    if not _NAME.match(name):
        problems.append(f"{where}: a name may hold only letters, digits, '_', '.' and '-'")
        return None
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a table")
        return None
    type_name = raw.get("type")
    if not type_name:
        problems.append(f"{where}.type: required key missing")
        return None
    try:
        plugin = registry.load(group, str(type_name))
    except registry.UnknownTypeError as exc:
        problems.append(f"{where}.type: {exc}")
        return None
    try:
        return plugin.Config.model_validate(raw)
    except ValidationError as exc:
        problems.extend(describe_validation_error(exc, prefix=(section, name), model=plugin.Config))
        return None


def describe_validation_error(
    exc: ValidationError, prefix: tuple[str, ...] = (), model: type[BaseModel] | None = None
) -> list[str]:
    """One line per error: the key path, the reason, a did-you-mean for an unknown key (when
    `model` is the one validated) and the `MONITOR_...` variable when one set that key."""
    lines = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        path = ".".join(str(part) for part in (*prefix, *loc))
        reason = _reason(error)
        if error["type"] == "extra_forbidden" and model is not None:
            reason = _unknown_key(str(loc[-1]), _keys_at(model, loc[:-1]))
        variable = _overriding_variable((*prefix, *loc))
        lines.append(f"{path}: {reason}" + (f" (set by ${variable})" if variable else ""))
    return lines


def _reason(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required key missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _unknown_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"unknown key; did you mean `{close[0]}`?" if close else "unknown key (check its spelling)"


def _keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the table at `loc` inside `model` accepts (none when it is not a model)."""
    annotation: Any = model
    for part in loc:
        annotation = _inside(annotation, part)
    found = _model_of(annotation)
    return list(found.model_fields) if found is not None else []


def _inside(annotation: Any, part: Any) -> Any:
    """The type of item `part` of a value of type `annotation`: a model's field, a list's
    item, a dict's value."""
    model = _model_of(annotation)
    if model is not None:
        field = model.model_fields.get(str(part))
        return field.annotation if field is not None else None
    annotation = _unwrapped(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (list, tuple) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    annotation = _unwrapped(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _unwrapped(annotation: Any) -> Any:
    """Without Annotated[...] and without `| None`."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _overriding_variable(loc: tuple[Any, ...]) -> str | None:
    """The `MONITOR_...` variable that set the value at `loc` (or a table holding it), if any."""
    present = {name.upper(): name for name in os.environ}
    for depth in range(len(loc), 0, -1):
        name = "MONITOR_" + "__".join(str(part) for part in loc[:depth]).upper()
        if name in present:
            return present[name]
    return None
