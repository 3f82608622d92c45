"""Shared pieces of the integration, TLS and TCP tests."""

import json
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses
from yarl import URL

from monitor.model import Finding

FIXTURES = Path(__file__).parent / "fixtures"

XERO_API = "https://api.xero.com/connections"
XERO_IDENTITY = "https://identity.xero.com/.well-known/openid-configuration"
XERO_STATUS = "https://status.xero.com/api/v2/summary.json"
SHOPIFY_SHOP = "https://acme.myshopify.com/admin/api/2025-10/shop.json"
CLERK_API = "https://api.clerk.com/v1/jwks"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def by_code(findings: list[Finding]) -> dict[str, Finding]:
    codes = [finding.code for finding in findings]
    assert len(codes) == len(set(codes)), f"duplicate codes: {codes}"
    return {finding.code: finding for finding in findings}


def connection_key(host: str) -> ConnectionKey:
    """What aiohttp attaches to a connector error, to build realistic ones."""
    return ConnectionKey(host, 443, True, True, None, None, None, host)



class _SentRequest:
    """Stands in for the writer of a request that was never sent."""

    output_size = 0


class _MockedResponse(ClientResponse):
    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _SentRequest())
        super().__init__(method, url, **kwargs)


class VendorMock(aioresponses):
    """aioresponses that works with aiohttp 3.14: aioresponses 0.7.9 builds responses
    without the `stream_writer` argument aiohttp 3.14 requires
    (github.com/pnuckowski/aioresponses/issues/289). Drop it once a release fixes that."""

    def add(self, url: Any, method: str = "GET", *args: Any, **kwargs: Any) -> None:
        kwargs["response_class"] = kwargs.get("response_class") or _MockedResponse
        super().add(url, method, *args, **kwargs)

    def sent(self, url: str) -> list[Any]:
        """The GET requests made to `url`, oldest first."""
        return self.requests.get(("GET", URL(url)), [])
