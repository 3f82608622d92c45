"""Secrets named in monitor.toml by environment variable (`*_env` keys), never by value."""

import os
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, SecretStr

from monitor.scrub import register_secret


@dataclass(frozen=True, slots=True)
class EnvSecret:
    """A secret read from the environment variable `variable` when the config was loaded."""

    variable: str
    secret: SecretStr = field(repr=False)

    def value(self) -> str:
        return self.secret.get_secret_value()

    def __str__(self) -> str:
        return f"${self.variable}"


def read_env_secret(value: object) -> EnvSecret:
    if isinstance(value, EnvSecret):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected the name of an environment variable")
    name = value.strip()
    secret = os.environ.get(name)
    if secret is None or secret == "":
        raise ValueError(f"environment variable {name} is not set")
    register_secret(secret)
    return EnvSecret(name, SecretStr(secret))


SecretEnv = Annotated[
    EnvSecret,
    BeforeValidator(read_env_secret),
    PlainSerializer(lambda s: s.variable, return_type=str),
]
"""A config field whose value names an environment variable that holds the secret."""
