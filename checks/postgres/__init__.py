"""The PostgreSQL check (`type = "postgres"`); its keys and findings are in README.md."""

from checks.postgres.check import PostgresCheck, PostgresCheckError
from checks.postgres.config import PostgresCheckConfig

__all__ = ["PostgresCheck", "PostgresCheckConfig", "PostgresCheckError"]
