"""Secrets named in monitor.toml by environment variable (`*_env` keys), never by value."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, SecretStr

from monitor.scrub import register_secret


@dataclass(frozen=True, slots=True)
class EnvSecret:
    """A secret read from the environment variable `variable` when the config was loaded."""

    variable: str
    secret: SecretStr | None = field(repr=False)
    """None when the config was loaded without resolving secrets (the operator commands)."""

    def value(self) -> str:
        if self.secret is None:
            raise RuntimeError(f"${self.variable} was not read: the config was loaded without its secrets")
        return self.secret.get_secret_value()

    def __str__(self) -> str:
        return f"${self.variable}"


_unresolved: ContextVar[bool] = ContextVar("secrets_unresolved", default=False)


@contextmanager
def secrets_unresolved(unresolved: bool = True) -> Iterator[None]:
    """Within this block `*_env` keys are checked for a variable name only, not read."""
    token = _unresolved.set(unresolved)
    try:
        yield
    finally:
        _unresolved.reset(token)


def read_env_secret(value: object) -> EnvSecret:
    if isinstance(value, EnvSecret):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected the name of an environment variable")
    name = value.strip()
    if _unresolved.get():
        return EnvSecret(name, None)
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


def read_store_secret(value: object) -> EnvSecret:
    """Like read_env_secret, also for the operator commands: they need the state store."""
    with secrets_unresolved(False):
        return read_env_secret(value)


StoreSecretEnv = Annotated[
    EnvSecret,
    BeforeValidator(read_store_secret),
    PlainSerializer(lambda s: s.variable, return_type=str),
]
"""A config field naming the environment variable of the state store's DSN, read by every command."""
