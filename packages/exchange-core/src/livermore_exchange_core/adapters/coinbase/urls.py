"""Every Coinbase Advanced Trade REST endpoint, built from the configured base URL.

Reference: https://docs.cdp.coinbase.com/advanced-trade/reference (paths under `/api/v3/brokerage`).
The WebSocket URL is the config's `ws_url` as is.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

BROKERAGE_PREFIX = "/api/v3/brokerage"


def _base(rest_url: str) -> str:
    return rest_url.rstrip("/") + BROKERAGE_PREFIX


def candles_path(product_id: str) -> str:
    """Path of `GET /market/products/{id}/candles` (public; newest first, <= 350 a request)."""
    return f"{BROKERAGE_PREFIX}/market/products/{quote(product_id, safe='')}/candles"


def candles_url(rest_url: str, product_id: str) -> str:
    """URL of the public candles endpoint of one product."""
    return rest_url.rstrip("/") + candles_path(product_id)


def products_url(rest_url: str) -> str:
    """URL of `GET /market/products` (public product list with 24h volumes)."""
    return f"{_base(rest_url)}/market/products"


def time_url(rest_url: str) -> str:
    """URL of `GET /time` (public server time)."""
    return f"{_base(rest_url)}/time"


ACCOUNTS_PATH = f"{BROKERAGE_PREFIX}/accounts"
"""Path of `GET /accounts` (signed; cursor paginated, 250 a page)."""


def accounts_url(rest_url: str) -> str:
    """URL of the signed accounts list."""
    return rest_url.rstrip("/") + ACCOUNTS_PATH


def jwt_target(rest_url: str, path: str) -> str:
    """Return `host[:port][/prefix]path` as a REST JWT `uri` claim names it.

    In production that is `api.coinbase.com/api/v3/brokerage/...`; behind a proxy or on the
    simulator the base URL's own path prefix is part of the request path, so it is signed too.
    """
    parts = urlsplit(rest_url)
    return f"{parts.netloc}{parts.path.rstrip('/')}{path}"
