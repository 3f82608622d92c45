"""What each vendor preset knows: the API hosts to probe, where credentials are tested,
and the vendor's public status page.

Sources (public documentation and status pages, checked when the presets were written):
- Xero: API host api.xero.com, whose `GET /connections` lists the organisations a token
  may use (developer.xero.com, OAuth 2.0 auth flow); tokens are issued and refreshed by
  identity.xero.com, so it is probed too. Status: status.xero.com is an Atlassian
  Statuspage, read through /api/v2/summary.json.
- Shopify: the Admin API lives on each store's own host, `<shop>.myshopify.com/admin/api/
  <version>/...`; `GET shop.json` with the `X-Shopify-Access-Token` header tests a token
  (shopify.dev, Admin REST API, Shop resource). Status: www.shopifystatus.com. Its
  current incident pages are no longer laid out as an Atlassian Statuspage and whether
  /api/v2/summary.json is still served is not confirmed, so it is not read by default.
- Clerk: the Backend API is api.clerk.com/v1, authenticated with the instance's secret
  key as a bearer token (clerk.com/docs, Backend API reference; `GET /v1/jwks`). Users
  sign in through the instance's own Frontend API host (`frontend_api`). Status:
  status.clerk.com, whose provider and JSON API are not confirmed: not read by default.
"""

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from checks.base import Severity
from checks.integration.config import IntegrationCheckConfig
from checks.integration.statuspage import summary_url

SHOPIFY_API_VERSION = "2025-10"
"""A stable Admin API version; Shopify answers a retired one with its oldest supported version."""


@dataclass(frozen=True, slots=True)
class Target:
    """One URL the check requests; `authenticated` requests carry the token."""

    url: str
    authenticated: bool = False


@dataclass(frozen=True, slots=True)
class Provider:
    vendor: str | None
    """The vendor's name in findings; None for custom, which uses the check's name."""
    urls: Callable[[IntegrationCheckConfig], tuple[str, ...]]
    """The URLs to probe, the API endpoint first: the one credentials are tested on."""
    impact: str | None = None
    """What users notice when the vendor is unreachable, named in the finding."""
    auth_header: str = "Authorization"
    status_api: str | None = None
    """The Statuspage v2 summary.json read by default; None where none is confirmed."""
    status_page: str | None = None
    """The status page a person reads, named in the evidence when it is not read automatically."""
    unreachable_severity: Severity = Severity.P2


def _xero(config: IntegrationCheckConfig) -> tuple[str, ...]:
    return ("https://api.xero.com/connections", "https://identity.xero.com/.well-known/openid-configuration")


def _shopify(config: IntegrationCheckConfig) -> tuple[str, ...]:
    return (f"https://{config.shop}/admin/api/{config.api_version or SHOPIFY_API_VERSION}/shop.json",)


def _clerk(config: IntegrationCheckConfig) -> tuple[str, ...]:
    frontend = (f"https://{config.frontend_api}/v1/environment",) if config.frontend_api else ()
    return ("https://api.clerk.com/v1/jwks", *frontend)


def _custom(config: IntegrationCheckConfig) -> tuple[str, ...]:
    assert config.url is not None  # the config requires it for custom
    return (config.url,)


PROVIDERS: dict[str, Provider] = {
    "xero": Provider(
        vendor="Xero",
        urls=_xero,
        status_api="https://status.xero.com/api/v2/summary.json",
        status_page="https://status.xero.com",
    ),
    "shopify": Provider(
        vendor="Shopify",
        urls=_shopify,
        auth_header="X-Shopify-Access-Token",
        status_page="https://www.shopifystatus.com",
    ),
    "clerk": Provider(
        vendor="Clerk",
        urls=_clerk,
        impact="users cannot log in",
        status_page="https://status.clerk.com",
    ),
    "custom": Provider(vendor=None, urls=_custom),
}


def probe_targets(config: IntegrationCheckConfig) -> tuple[Target, ...]:
    """The requests of one run. With a token, the API endpoint (or `auth_path` on its host)
    is requested with it, which tests reachability and credentials at once."""
    api, *others = PROVIDERS[config.provider].urls(config)
    if config.token_env is None:
        return tuple(Target(url) for url in (api, *others))
    authenticated = Target(_with_path(api, config.auth_path) if config.auth_path else api, authenticated=True)
    return (authenticated, *(Target(url) for url in others))


def status_api_url(config: IntegrationCheckConfig) -> str | None:
    """The Statuspage summary.json this check reads, if any."""
    if not config.status_page:
        return None
    if config.status_page_url is not None:
        return summary_url(config.status_page_url)
    return PROVIDERS[config.provider].status_api


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
