"""The PostgreSQL check (`type = "postgres"`); see docs/postgres.md."""

from checks.postgres.check import PostgresCheck, PostgresCheckError
from checks.postgres.config import PostgresCheckConfig

__all__ = ["PostgresCheck", "PostgresCheckConfig", "PostgresCheckError"]
