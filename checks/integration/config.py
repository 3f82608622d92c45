"""The keys of `type = "integration"`, checked against the provider they belong to."""

import re
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from checks.base import CheckConfig, Duration, SecretEnv, Severity
from checks.probe import require_http_url

ProviderName = Literal["xero", "shopify", "clerk", "custom"]

_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")

# Keys that only make sense for some providers; set for another, they are mistakes.
_PROVIDER_ONLY_KEYS: dict[str, set[str]] = {
    "url": {"custom"},
    "auth_header": {"custom"},
    "shop": {"shopify"},
    "api_version": {"shopify"},
    "frontend_api": {"clerk"},
}
_REQUIRED_KEYS: dict[str, str] = {"custom": "url", "shopify": "shop"}


class IntegrationCheckConfig(CheckConfig):
    provider: ProviderName = Field(description="A vendor preset, or custom with your own url.")
    url: str | None = Field(default=None, description="custom: the vendor API endpoint to probe.")
    shop: str | None = Field(default=None, description='shopify: the store, "acme" or "acme.myshopify.com".')
    api_version: str | None = Field(default=None, description="shopify: the Admin API version in the probed path.")
    frontend_api: str | None = Field(
        default=None, description='clerk: your instance\'s Frontend API host, e.g. "clerk.example.com", probed too.'
    )
    token_env: SecretEnv | None = Field(
        default=None, description="Environment variable with an API token: the probe then also checks credentials."
    )
    auth_path: str | None = Field(
        default=None, description="Path probed with the token on the API host; default: the preset's."
    )
    auth_header: str = Field(
        default="Authorization",
        description='custom: header carrying the token ("Bearer <token>" in Authorization, the bare token otherwise).',
    )
    status_page: bool = Field(default=True, description="Read the vendor's status page when one is known.")
    status_page_url: str | None = Field(
        default=None,
        description="An Atlassian Statuspage (its address or its /api/v2/summary.json); replaces the preset's.",
    )
    status_page_interval: Duration = Field(default=300.0, gt=0, description="How long a status-page answer is reused.")
    status_components: list[str] = Field(
        default_factory=list,
        description="Only these components of the status page count; default: the page's overall indicator.",
    )
    vendor: str | None = Field(default=None, description="The vendor's name in findings; default: the preset's.")
    severity: Severity | None = Field(
        default=None, description="Severity when the vendor API is unreachable; default: the preset's (P2)."
    )

    @field_validator("url", "status_page_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else require_http_url(value)

    @field_validator("shop")
    @classmethod
    def _shop_host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host = _bare_host(value)
        if "." not in host:
            host = f"{host}.myshopify.com"
        if not _HOST.match(host):
            raise ValueError(f'expected a store name such as "acme" or "acme.myshopify.com", got {value!r}')
        return host

    @field_validator("frontend_api")
    @classmethod
    def _frontend_host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host = _bare_host(value)
        if not _HOST.match(host):
            raise ValueError(f'expected a host name such as "clerk.example.com", got {value!r}')
        return host

    @field_validator("auth_path")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f'expected a path starting with "/", got {value!r}')
        return value

    @model_validator(mode="after")
    def _keys_fit_provider(self) -> Self:
        for key, providers in _PROVIDER_ONLY_KEYS.items():
            if key in self.model_fields_set and self.provider not in providers:
                raise ValueError(f"{key} applies only to provider {' or '.join(sorted(providers))}")
        required = _REQUIRED_KEYS.get(self.provider)
        if required is not None and getattr(self, required) is None:
            raise ValueError(f"provider {self.provider} needs {required}")
        if self.auth_path is not None and self.token_env is None:
            raise ValueError("auth_path needs token_env (the token the path is probed with)")
        return self


def _bare_host(value: str) -> str:
    """`acme.example.com` from `https://acme.example.com/` or `acme.example.com`."""
    return (urlsplit(value).hostname if "://" in value else value.strip().strip("/")) or ""
