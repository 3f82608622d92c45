"""The `[checks.NAME]` keys of `type = "postgres"`."""

from typing import Self

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from checks.base import CheckConfig, Duration, SecretEnv

_DSN_SCHEMES = ("postgresql://", "postgres://")


class PostgresCheckConfig(CheckConfig):
    model_config = ConfigDict(hide_input_in_errors=True)  # a rejected dsn may hold a password

    dsn: SecretStr | None = Field(
        default=None,
        description="postgresql:// URL of the database; prefer dsn_env, which keeps the password out of the file.",
    )
    dsn_env: SecretEnv | None = Field(default=None, description="Environment variable holding the postgresql:// URL.")
    pgbouncer: bool = Field(
        default=False, description="The DSN points at pgbouncer (transaction pooling): no prepared statement cache."
    )
    connect_timeout: Duration = Field(default=5.0, gt=0, description="Limit on opening a connection.")
    statement_timeout: Duration = Field(default=2.0, gt=0, description="Server-side limit on each diagnostic query.")
    lock_timeout: Duration = Field(default=1.0, gt=0, description="Longest a diagnostic query waits for a lock.")
    connections_warning_percent: float = Field(default=80, gt=0, le=100, description="Of usable slots: WARNING, P3.")
    connections_critical_percent: float = Field(default=90, gt=0, le=100, description="Of usable slots: CRITICAL, P2.")
    long_query: Duration = Field(default=300.0, description="Active queries running longer than this: P3.")
    long_query_critical: Duration = Field(default=1800.0, description="Active queries running longer than this: P2.")
    idle_in_transaction: Duration = Field(default=300.0, description="Sessions idle in a transaction this long: P3.")
    blocked: Duration = Field(default=60.0, description="Sessions waiting on another's lock this long: P3.")
    error_table: str = Field(
        default="error_logs", description='Application error table ("schema.table" allowed); "" disables the check.'
    )
    error_time_column: str = Field(default="created_at", description="The error table's timestamp column.")
    error_window: Duration = Field(default=3600.0, gt=0, description="How far back error rows are counted.")
    error_threshold: int = Field(default=0, ge=0, description="More error rows than this in the window: P3.")
    wraparound_percent: float = Field(
        default=50, gt=0, le=100, description="Oldest transaction ID age, in percent of 2^31: P2."
    )
    top_tables: int = Field(default=10, ge=0, description="Largest tables exported as pg_table_size_bytes; 0: none.")
    table_size_interval: Duration = Field(default=300.0, description="How often table sizes are measured.")

    @field_validator("dsn")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(_DSN_SCHEMES):
            raise ValueError("expected a postgresql:// URL")
        return value

    @field_validator("error_table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if value and (len(value.split(".")) > 2 or not all(value.split("."))):
            raise ValueError('expected "table" or "schema.table"')
        return value

    @field_validator("error_time_column")
    @classmethod
    def _column_name(cls, value: str) -> str:
        if not value:
            raise ValueError("expected a column name")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.dsn is None) == (self.dsn_env is None):
            raise ValueError("set exactly one of dsn and dsn_env")
        if self.dsn_env is not None and not self.dsn_env.value().startswith(_DSN_SCHEMES):
            raise ValueError(f"dsn_env: {self.dsn_env} does not hold a postgresql:// URL")
        if self.connections_critical_percent < self.connections_warning_percent:
            raise ValueError("connections_critical_percent must not be below connections_warning_percent")
        if self.long_query_critical < self.long_query:
            raise ValueError("long_query_critical must not be shorter than long_query")
        return self

    def dsn_value(self) -> str:
        if self.dsn_env is not None:
            return self.dsn_env.value()
        assert self.dsn is not None
        return self.dsn.get_secret_value()
